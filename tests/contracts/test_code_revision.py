"""Contract of the code-revision port over git and the fixed fake: the checked-out commit, dirty
exactly when a tracked file changed, unknown outside a checkout."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import pytest

from drl_trading.training.adapter import git_revision
from drl_trading.training.adapter.fixed_revision import FixedRevision
from drl_trading.training.adapter.git_revision import GitRevision
from drl_trading.training.core.ports import CodeRevision, Revision

SHA = re.compile(r"[0-9a-f]{40}")
REPO_ROOT = Path(__file__).resolve().parents[2]
# the framework runs from this checkout (an editable install), not from an installed wheel
FROM_CHECKOUT = (REPO_ROOT / ".git").exists() and REPO_ROOT in Path(git_revision.__file__).parents


class Checkout(Enum):
    CLEAN = "clean"
    DIRTY = "dirty"  # a tracked file edited
    UNTRACKED = "untracked"  # only a new, untracked file
    NONE = "none"  # not a checkout at all


EXPECTED_DIRTY = {Checkout.CLEAN: False, Checkout.DIRTY: True, Checkout.UNTRACKED: False}

# the adapter for a checkout in the given state, and the commit it must report (None: unknown)
Make = Callable[[Checkout], tuple[CodeRevision, str | None]]


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


def _git_checkout(root: Path) -> Make:
    def make(state: Checkout) -> tuple[CodeRevision, str | None]:
        work = root / state.value
        work.mkdir()
        if state is Checkout.NONE:
            return GitRevision(work), None
        _git(work, "init", "-q")
        (work / "code.py").write_text("x = 1\n")
        _git(work, "add", "code.py")
        _git(work, "commit", "-q", "-m", "first")
        if state is Checkout.DIRTY:
            (work / "code.py").write_text("x = 2\n")
        if state is Checkout.UNTRACKED:
            (work / "notes.txt").write_text("scratch\n")
        sub = work / "pkg"  # asked from inside the tree, as the default path is
        sub.mkdir()
        return GitRevision(sub), _git(work, "rev-parse", "HEAD")

    return make


def _fixed(state: Checkout) -> tuple[CodeRevision, str | None]:
    if state is Checkout.NONE:
        return FixedRevision(None), None
    commit = "0123456789abcdef0123456789abcdef01234567"
    return FixedRevision(Revision(commit, EXPECTED_DIRTY[state])), commit


@pytest.fixture(params=["git", "fixed"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Make:
    if request.param == "git":
        return _git_checkout(tmp_path)
    return _fixed


@pytest.mark.parametrize("state", [Checkout.CLEAN, Checkout.DIRTY, Checkout.UNTRACKED])
def test_a_checkout_reports_its_commit_and_whether_tracked_files_changed(
    make: Make, state: Checkout
) -> None:
    adapter, commit = make(state)
    got = adapter.revision()
    assert got is not None
    assert SHA.fullmatch(got.commit)
    assert got == Revision(str(commit), dirty=EXPECTED_DIRTY[state])
    assert str(got) == got.commit + ("-dirty" if got.dirty else "")
    assert adapter.revision() == got  # asking again changes nothing


def test_outside_a_checkout_the_revision_is_unknown(make: Make) -> None:
    adapter, _ = make(Checkout.NONE)
    assert adapter.revision() is None


@pytest.mark.skipif(not FROM_CHECKOUT, reason="the framework is not run from a git checkout")
def test_git_by_default_reads_the_checkout_of_the_framework() -> None:
    got = GitRevision().revision()
    assert got is not None
    assert got.commit == _git(REPO_ROOT, "rev-parse", "HEAD")
