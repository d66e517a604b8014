"""What the tests' own processes (Celery worker and beat, gunicorn) share: a log file, and a stop that waits."""

from __future__ import annotations

import subprocess
from pathlib import Path


class Process:
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Terminate, and kill it if it is still there after 20 s."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
