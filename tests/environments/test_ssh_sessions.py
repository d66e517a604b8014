"""Sessions opened ahead: the next command's session starts on the host while the current one runs, so
the host's login shell (its rc files: nvm, rbenv, pyenv...) is not paid between two steps. Real sshd hosts.
"""

from __future__ import annotations

import pytest
from fabric import Connection

from deployer.integrations import ssh, ssh_sessions

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

# Prints this command's session (the shell the script runs under, through `timeout`), then every session open
# on the connection: the children of sshd's process for the connection. It waits up to $WAIT tenths of a
# second for $WANT of them to be there.
SESSIONS = """
session=$(awk '{print $4}' /proc/$PPID/stat)
sshd=$(awk '{print $4}' /proc/$session/stat)
sessions() { cat /proc/[0-9]*/stat 2>/dev/null | awk -v p="$sshd" '$4 == p {print $1}' | sort -n; }
i=0
while [ "$(sessions | wc -l)" -lt "$WANT" ] && [ "$i" -lt "$WAIT" ]; do sleep 0.1; i=$((i + 1)); done
echo "$session"
echo $(sessions)
"""


def sessions(conn: Connection, *, want: int, wait: int = 100) -> tuple[str, list[str]]:
    """(this command's session, every session open on the connection while it ran)"""
    lines: list[str] = []
    ssh.run(conn, f"WANT={want} WAIT={wait}\n{SESSIONS}", timeout=30, output=lines.append)
    return lines[-2], lines[-1].split()


def test_the_next_planned_commands_session_is_opened_while_a_command_runs(conn: Connection) -> None:
    ssh_sessions.commands_planned(conn, 2)
    first, open_then = sessions(conn, want=2)
    assert len(open_then) == 2 and first in open_then, "its own, and the next one's"

    second, _ = sessions(conn, want=1)

    assert second in open_then and second != first, "the next command ran in the session opened meanwhile"


def test_no_session_is_opened_after_the_last_planned_command(conn: Connection) -> None:
    ssh_sessions.commands_planned(conn, 1)
    first, open_then = sessions(conn, want=2, wait=10)

    assert open_then == [first], "no other session within a second"


def test_no_session_is_opened_ahead_without_a_plan(conn: Connection) -> None:
    first, open_then = sessions(conn, want=2, wait=10)

    assert open_then == [first], "a caller that planned nothing (the builder, a probe) pays for no login shell"


def test_sessions_opened_ahead_before_the_first_command_wait_for_it(conn: Connection) -> None:
    ssh_sessions.sessions_ahead(conn, 2)
    first, open_then = sessions(conn, want=2)
    second, _ = sessions(conn, want=1)

    assert sorted([first, second]) == open_then, "both commands ran in sessions opened before the first"


def test_a_session_opened_ahead_that_went_away_is_replaced(conn: Connection) -> None:
    ssh_sessions.commands_planned(conn, 2)
    ssh.run(conn, "true", timeout=30, output=print)
    transport = conn.client.get_transport()
    assert transport is not None
    for waiting in ssh_sessions._spares[transport]:
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
