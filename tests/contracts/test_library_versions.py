"""Contract of the library-versions probe over the installed metadata and the fake: python and
every name asked for, each a version string or "not installed"."""

from __future__ import annotations

import platform

import pytest

from drl_trading.training.adapter.fixed_versions import FixedVersions
from drl_trading.training.adapter.installed_versions import InstalledVersions
from drl_trading.training.core.ports import LibraryVersions

NAMES = ("drl-trading", "numpy", "no-such-distribution-xyz")


@pytest.fixture(params=["installed", "fixed"])
def probe(request: pytest.FixtureRequest) -> LibraryVersions:
    if request.param == "installed":
        return InstalledVersions()
    return FixedVersions({"drl-trading": "0.2.0", "numpy": "2.0.0"})


def test_every_name_and_python_are_answered(probe: LibraryVersions) -> None:
    got = probe.versions(NAMES)
    assert set(got) == {"python", *NAMES}
    assert all(isinstance(v, str) and v for v in got.values())
    assert got["no-such-distribution-xyz"] == "not installed"
    assert got["drl-trading"][0].isdigit() and got["numpy"][0].isdigit()


def test_the_installed_probe_reads_this_environment() -> None:
    import numpy

    got = InstalledVersions().versions(("numpy",))
    assert got == {"python": platform.python_version(), "numpy": numpy.__version__}
