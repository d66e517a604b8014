"""The migration check's part of a build session (migration_check.py says what it checks): the step the
builder runs once the build's processes are gone, and the reading of what it printed."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from deployer.deploys.migration_check import FINDING_MARK, FINDINGS_MAX, OUTPUT_MAX, Lint, finding_parsed
from deployer.deploys.sandbox import sandboxed

TAIL = 15
BEGIN = "GANTRY-LINT-BEGIN-"
END = "GANTRY-LINT-END-"
DONE_MARK = "GANTRY-LINT-DONE"  # the check's script printed it as its last line: it ran to the end


@dataclass(frozen=True)
class Checked:
    """What a check found; `error` says why it could not judge (then it is no pass)."""

    findings: list[dict[str, str]]
    error: str = ""


def lint_step(lint: Lint, *, base: str, work: str, token: str) -> str:
    """The shell step: the check in a sandbox of its own over the built tree, read-only, its output kept in a
    file Gantry made (at most OUTPUT_MAX bytes) and printed only once the sandbox has ended, between marks
    that carry this session's `token` (never shown to a sandbox): nothing the branch prints can end the
    check's output early or pose as the artifact Gantry packs after it."""
    q = shlex.quote
    return (
        f"out=$(mktemp -p {q(base)}/artifacts .check.XXXXXX)\nset +e\n"
        + sandboxed(f"cd -- src\n{lint.script}", base=base, work=work, writable=False)
        + f' 2>&1 | head -c {OUTPUT_MAX} > "$out"\n'
        # The pipeline's status is head's: the check's own is asked of the sandbox through a file it cannot
        # reach, so an unfinished check is said as one.
        + f'echo "{BEGIN}{token}"; cat -- "$out"; printf \'\\n\'; rm -f -- "$out"\n'
        + f'echo "{END}{token}"\nset -e\n'
    )


@dataclass
class LintOutput:
    """Reads a build session's lines: which belong to the check (between this session's marks), and what it
    found."""

    lint: Lint
    token: str
    active: bool = False
    ended: bool = False
    done: bool = False
    findings: list[dict[str, str]] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)

    def line(self, text: str) -> bool:
        """Whether `text` is the check's (a mark, a finding or its output)."""
        if text == f"{BEGIN}{self.token}":
            self.active = True
            return True
        if not self.active:
            return False
        if text == f"{END}{self.token}":
            self.active, self.ended = False, True
        elif text == DONE_MARK:
            self.done = True
        elif text.startswith(FINDING_MARK):
            if len(self.findings) < FINDINGS_MAX:
                found = finding_parsed(text.removeprefix(FINDING_MARK)[:5000], self.lint.files)
                if found is not None:
                    self.findings.append(found)
        elif text.strip():
            self.done = False  # DONE counts only as the last line
            self.tail = [*self.tail, text[:300]][-TAIL:]
        return True

    @staticmethod
    def shown(text: str) -> bool:
        """Whether a line of the check's belongs in the deploy's log: what the check itself printed (its
        findings are logged once it has ended; Gantry's marks are not the reader's business)."""
        return bool(text.strip()) and not text.startswith((FINDING_MARK, BEGIN, END, DONE_MARK))

    def summary(self) -> list[str]:
        """The check's result, as the deploy's log says it."""
        result = self.result()
        lines = [f"{f['file']}: {f['code']} {f['message']}" for f in result.findings]
        if result.error:
            lines.append(f"could not judge the migrations: {result.error}")
        lines.append(f"{len(self.lint.files)} migration file(s) checked, {len(result.findings)} finding(s)")
        return lines

    def result(self) -> Checked:
        if not self.ended or not self.done:
            said = "; ".join(line for line in self.tail if line.strip())[-1500:]
            return Checked(self.findings, f"the check did not run to its end: {said or 'it printed nothing'}")
        return Checked(self.findings)
