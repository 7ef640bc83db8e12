"""`CodeRevision` fake: answers the revision it was given (None: unknown)."""

from __future__ import annotations

from drl_trading.training.core.ports import Revision


class FixedRevision:
    def __init__(self, revision: Revision | None) -> None:
        self._revision = revision

    def revision(self) -> Revision | None:
        return self._revision
