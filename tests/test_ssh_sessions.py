"""Sessions opened ahead: the next command's session starts on the host while the current one runs, so
the host's login shell (its rc files: nvm, rbenv, pyenv...) is not paid between two steps. Real sshd hosts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fabric import Connection

from deployer.integrations import ssh
from tests.conftest import SshdHost

# How long ago, in ms, the session running this script started waiting for it: the script's shell runs
# under `timeout`, whose parent is the session's shell.
WAITED_MS = (
    "session=$(awk '{print $4}' /proc/$PPID/stat)\n"
    "mine=$(awk '{print $22}' /proc/$$/stat); theirs=$(awk '{print $22}' /proc/$session/stat)\n"
    "echo $(( (mine - theirs) * 1000 / $(getconf CLK_TCK) ))\n"
)


@pytest.fixture
def conn(ssh_hosts: list[SshdHost]) -> Iterator[Connection]:
    host = ssh_hosts[0]
    connection = ssh.open_connection(ssh.Target(host.address, host.port, host.user))
    yield connection
    connection.close()


def waited_ms(conn: Connection) -> int:
    lines: list[str] = []
    ssh.run(conn, WAITED_MS, timeout=30, output=lines.append, ahead=False)
    return int(lines[-1])


def test_the_next_commands_session_is_opened_while_a_command_runs(conn: Connection) -> None:
    ssh.run(conn, "sleep 1", timeout=30, output=print)

    assert waited_ms(conn) >= 400, "its session was there, waiting, during most of the second before"


def test_no_session_is_opened_after_a_hosts_last_command(conn: Connection) -> None:
    ssh.run(conn, "sleep 1", timeout=30, output=print, ahead=False)

    assert waited_ms(conn) < 400, "opened when it was needed, not during the command before"


def test_sessions_opened_ahead_before_the_first_command_wait_for_it(conn: Connection) -> None:
    ssh.sessions_ahead(conn, 2)
    ssh.run(conn, "sleep 1", timeout=30, output=print, ahead=False)

    assert waited_ms(conn) >= 400, "the second session opened ahead was used"


def test_a_session_opened_ahead_that_went_away_is_replaced(conn: Connection) -> None:
    ssh.run(conn, "true", timeout=30, output=print)
    transport = conn.client.get_transport()
    assert transport is not None
    for waiting in ssh._spares[transport]:
        waiting.close()  # as when its shell ended or the host closed it

    lines: list[str] = []
    ssh.run(conn, "echo still works; cat", timeout=30, output=lines.append, stdin=[b"its stdin too\n"])

    assert lines == ["still works", "its stdin too"]


def test_a_script_keeps_its_trailing_newlines_quotes_and_exit_status(conn: Connection) -> None:
    lines: list[str] = []
    script = "printf '%s|' \"a 'quoted' \\\"word\\\"\" $(printf 'x\\n\\n')\nexit 3\n\n\n"

    with pytest.raises(ssh.StepFailed, match="exited with status 3"):
        ssh.run(conn, script, timeout=30, output=lines.append)

    assert lines == ["a 'quoted' \"word\"|x|"]
