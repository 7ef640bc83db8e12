"""The package plan holds: the import contracts catch a violation, naming the import, and the
inference process loads neither the training package nor its ML stack."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin", "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _planted(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package with ``line`` as the module ``module`` (dotted, under drl_trading)."""
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "drl_trading",
        src / "drl_trading",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (src / "drl_trading" / (module.replace(".", "/") + ".py")).write_text(line + "\n")
    return src


def test_the_contracts_hold_on_the_tree() -> None:
    result = _lint(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_service_importing_another_breaks_a_contract_naming_the_import(tmp_path: Path) -> None:
    src = _planted(tmp_path, "inference.core.planted", "from drl_trading.training.core import env")
    result = _lint(src)
    assert result.returncode != 0
    assert "drl_trading.inference.core.planted -> drl_trading.training.core.env (l.1)" in " ".join(
        result.stdout.split()
    )


def test_a_core_importing_its_adapter_breaks_a_contract(tmp_path: Path) -> None:
    planted = "from drl_trading.execution.adapter import paper_broker"
    result = _lint(_planted(tmp_path, "execution.core.planted", planted))
    assert result.returncode != 0
    report = " ".join(result.stdout.split())
    assert (
        "drl_trading.execution.core.planted -> drl_trading.execution.adapter.paper_broker" in report
    )


def test_the_inference_process_imports_no_training_stack() -> None:
    """What `serve inference` imports to compose itself (the MLflow registry included). Of the
    training package it loads only the settings schemas of its sections (training, tuning) and the
    algorithm defaults they resolve (hyperparameters, no SB3): the
    configuration is validated as a whole in every process, so a typo in any section is
    reported at start."""
    code = (
        "import sys\n"
        "import drl_trading.app.services, drl_trading.app.inference\n"
        "import drl_trading.execution.adapter.postgres_store\n"
        "import drl_trading.execution.adapter.store_positions\n"
        "import drl_trading.common.adapter.mlflow_registry\n"
        "import drl_trading.policy.predictor\n"
        "from drl_trading.common.adapter.feast_import import import_feast\n"
        "import_feast()\n"  # the service builds its feature store before it is ready
        "heavy = ('gymnasium', 'stable_baselines3', 'sb3_contrib', 'torch')\n"
        "print(sorted(m for m in sys.modules if m in heavy or m.startswith('drl_trading.train')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip() == str(
        [
            "drl_trading.training",
            "drl_trading.training.core",
            "drl_trading.training.core.config",
            "drl_trading.training.core.hyperparameters",
            "drl_trading.training.core.tuning_config",
        ]
    )


def test_models_registered_before_the_move_still_find_their_pyfunc() -> None:
    """A registered version's logged model code imports the pyfunc by the path it had then."""
    from drl_trading.policy.mlflow_pyfunc import DrlPolicyModel
    from drl_trading.training.adapter.mlflow_pyfunc import DrlPolicyModel as Registered

    assert Registered is DrlPolicyModel
