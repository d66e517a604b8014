"""What makes a page easy to read and keep open: build output's colours in the log (and nothing else a
branch's output could do to a reader's screen), a link to each log line, times the browser can show in the
viewer's zone, and the services matrix's state filter checked like any parameter."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deployer.choices import DeployStatus
from deployer.lib.ansi import Piece, ansi_pieces
from deployer.models import Deploy, DeployLog, Environment

pytestmark = pytest.mark.one_backend


def test_colours_are_kept_and_every_other_escape_is_dropped() -> None:
    coloured = "\x1b[1;31mFAILED\x1b[0m tests/x.py \x1b[32mok\x1b[39m done"
    assert ansi_pieces(coloured) == [
        Piece("FAILED", "ansi-31 ansi-bold"),
        Piece(" tests/x.py ", ""),
        Piece("ok", "ansi-32"),
        Piece(" done", ""),
    ]
    # Cursor moves, screen clears, titles and bare control characters would rewrite what a reader sees.
    assert ansi_pieces("a\x1b[2Jb\x1b[1Ac\x1b]0;title\x07d\x08e\x1bZ") == [Piece("abcde", "")]


def test_a_log_line_is_linkable_filterable_by_host_and_escaped(
    deployer_client: Client, environment: Environment
) -> None:
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.RUNNING)
    line = DeployLog.objects.create(
        deploy=deploy, at=timezone.now(), host="10.0.0.1", message="\x1b[31m<b>boom</b>\x1b[0m"
    )
    page = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert f'id="L{line.pk}"' in page and f'href="#L{line.pk}"' in page and 'data-host="10.0.0.1"' in page
    assert '<span class="ansi-31">&lt;b&gt;boom&lt;/b&gt;</span>' in page
    assert 'id="log-host"' in page, "the host filter"
    assert f'datetime="{line.at.isoformat()}" data-at="time"' in page, "the browser shows it in the viewer's zone"


def test_the_matrix_state_filter_refuses_a_value_it_does_not_know(
    deployer_client: Client, environment: Environment
) -> None:
    answer = deployer_client.get(reverse("services"), {"state": "broken"})
    assert answer.status_code == 400
    assert "state is one of failing, deploying, locked, drifted" in answer.content.decode()
    page = deployer_client.get(reverse("services"), {"state": "locked"}).content.decode()
    assert 'data-states="' in page and "every 30s" in page, "rows say their states; the matrix refreshes itself"
