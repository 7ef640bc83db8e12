"""The training service's record of the code it trained with: the revision the port reports,
or the installed package version when the revision is unknown."""

from __future__ import annotations

from pathlib import Path

import pytest

from drl_trading.common.adapter.memory_feature_store import InMemoryFeatureStore
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.strategy import BaseStrategy, default_feature_set
from drl_trading.training.adapter.fixed_revision import FixedRevision
from drl_trading.training.adapter.fixed_versions import FixedVersions
from drl_trading.training.adapter.memory_reports import InMemoryReports
from drl_trading.training.adapter.registry_packages import RegistryPackages
from drl_trading.training.adapter.sb3_trainer import SB3Trainer
from drl_trading.training.core.config import TrainingSettings
from drl_trading.training.core.ports import Revision
from drl_trading.training.core.service import TrainingService

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def service(revision: Revision | None, tmp_path: Path) -> TrainingService:
    registry = InMemoryRegistry(tmp_path / "registry")
    return TrainingService(
        InMemoryMarketData(),
        InMemoryFeatureStore(),
        registry,
        BaseStrategy(),
        default_feature_set(),
        TrainingSettings(),
        model_name="drl-base",
        trainer=SB3Trainer(),
        revision=FixedRevision(revision),
        reports=InMemoryReports(),
        packages=RegistryPackages(registry),
        libraries=FixedVersions({"drl-trading": "0.2.0"}),
    )


@pytest.mark.parametrize(
    ("revision", "expected"),
    [
        (Revision(COMMIT, dirty=False), COMMIT),
        (Revision(COMMIT, dirty=True), f"{COMMIT}-dirty"),
    ],
)
def test_code_version_is_the_commit_marked_dirty_when_tracked_files_changed(
    revision: Revision, expected: str, tmp_path: Path
) -> None:
    assert service(revision, tmp_path).code_version() == expected


def test_code_version_without_a_known_revision_is_the_package_version(tmp_path: Path) -> None:
    assert service(None, tmp_path).code_version() == "drl-trading 0.2.0"
