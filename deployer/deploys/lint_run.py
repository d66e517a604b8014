"""The migration check's part of a build session (migration_check.py says what it checks): the step the
builder runs once the build's processes are gone, and the reading of what it printed."""

from __future__ import annotations

from dataclasses import dataclass, field

from deployer.deploys.migration_check import BEGIN_MARK, END_MARK, FINDING_MARK, FINDINGS_MAX, Lint, finding_parsed
from deployer.deploys.sandbox import sandboxed

TAIL = 15


@dataclass(frozen=True)
class Checked:
    """What a check found; `error` says why it could not judge (then it is no pass)."""

    findings: list[dict[str, str]]
    error: str = ""


def lint_step(lint: Lint, *, base: str, work: str) -> str:
    """The shell step: the check in a sandbox of its own over the built tree, read-only. Its marks are printed
    outside that sandbox, after the build's own sandbox has ended, so only the last BEGIN counts."""
    return (
        f"echo {BEGIN_MARK}\nset +e\n"
        + sandboxed(f"cd -- src\n{lint.script}", base=base, work=work, writable=False)
        + f' 2>&1\necho "{END_MARK}$?"\nset -e\n'
    )


@dataclass
class LintOutput:
    """Reads a build session's lines: which belong to the check, and what it found."""

    lint: Lint
    active: bool = False
    status: str | None = None
    findings: list[dict[str, str]] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)

    def line(self, text: str) -> bool:
        """Whether `text` is the check's (a mark, a finding or its output)."""
        if text == BEGIN_MARK:  # a build may print one too: the last one, Gantry's, starts afresh
            self.active, self.status, self.findings, self.tail = True, None, [], []
            return True
        if not self.active:
            return False
        if text.startswith(END_MARK):
            self.active, self.status = False, text.removeprefix(END_MARK).strip()
        elif text.startswith(FINDING_MARK):
            found = finding_parsed(text.removeprefix(FINDING_MARK), self.lint.files)
            if found is not None and len(self.findings) < FINDINGS_MAX:
                self.findings.append(found)
        else:
            self.tail = [*self.tail, text[:300]][-TAIL:]
        return True

    @staticmethod
    def finding_line(text: str) -> bool:
        return text.startswith(FINDING_MARK)

    def result(self) -> Checked:
        if self.status is None:
            return Checked(self.findings, "the check did not finish")
        if self.status != "0":
            said = "; ".join(line for line in self.tail if line.strip())[-1500:]
            return Checked(self.findings, f"the check failed (exit {self.status}): {said or 'it printed nothing'}")
        return Checked(self.findings)
