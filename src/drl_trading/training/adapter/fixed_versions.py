"""`LibraryVersions` fake: the versions it was given, "not installed" for any other name."""

from __future__ import annotations


class FixedVersions:
    def __init__(self, known: dict[str, str], python: str = "3.11.0") -> None:
        self._known = dict(known)
        self._python = python

    def versions(self, names: tuple[str, ...]) -> dict[str, str]:
        return {"python": self._python} | {n: self._known.get(n, "not installed") for n in names}
