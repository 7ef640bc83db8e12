"""The code's revision from git: the checked-out commit and whether tracked files changed.

An installed wheel has no checkout: git then fails (or is missing) and the revision is unknown,
which the training service records as the package version instead.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from drl_trading.training.core.ports import Revision

TIMEOUT_S = 5.0
"""Seconds each git call may take before the revision counts as unknown."""


class GitRevision:
    """`CodeRevision` of the git work tree holding ``path`` (default: this framework's code)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path(__file__).resolve().parent

    def revision(self) -> Revision | None:
        try:
            commit = self._git("rev-parse", "HEAD")
            if commit.returncode != 0:
                return None
            # untracked files are scratch (reports, data), not a change to the code
            status = self._git("status", "--porcelain", "--untracked-files=no")
        except (OSError, subprocess.SubprocessError):
            return None
        return Revision(commit.stdout.strip(), dirty=bool(status.stdout.strip()))

    def _git(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args], cwd=self.path, capture_output=True, text=True, timeout=TIMEOUT_S
        )
