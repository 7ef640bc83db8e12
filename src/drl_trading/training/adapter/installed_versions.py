"""`LibraryVersions` from the installed distributions' metadata (importlib.metadata)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


class InstalledVersions:
    def versions(self, names: tuple[str, ...]) -> dict[str, str]:
        out = {"python": platform.python_version()}
        for name in names:
            try:
                out[name] = version(name)
            except PackageNotFoundError:
                out[name] = "not installed"
        return out
