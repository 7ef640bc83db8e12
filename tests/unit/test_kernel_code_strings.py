"""The kernel imports nothing above it, in code strings too.

import-linter reads import statements; Python source kept in a string (code MLflow logs and runs
when a model is loaded, a script for a subprocess) escapes it. A line of such a string that
imports a package above the kernel is the same upward dependency, so the kernel holds none.
"""

from __future__ import annotations

import re
from pathlib import Path

import drl_trading.common

_UPPER = (
    "strategy",
    "policy",
    "evaluation",
    "ingest",
    "preprocess",
    "training",
    "inference",
    "execution",
    "app",
    "cli",
    "testing",
)
_IMPORT = re.compile(rf"^\s*(from|import)\s+drl_trading\.({'|'.join(_UPPER)})\b.*", re.MULTILINE)


def _upward_imports(source: str) -> list[str]:
    return [m.group(0).strip() for m in _IMPORT.finditer(source)]


def test_no_kernel_module_holds_an_import_of_an_upper_package() -> None:
    root = Path(drl_trading.common.__file__).parent
    found = {
        str(path.relative_to(root)): hits
        for path in sorted(root.rglob("*.py"))
        if (hits := _upward_imports(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_check_sees_an_import_inside_a_string() -> None:
    planted = "\n".join(
        [
            'CODE = """',
            "import mlflow",
            "    from drl_trading.policy.mlflow_pyfunc import X",
            '"""',
            "from drl_trading.common.domain import Symbol",
            "# the training package is above the kernel",
        ]
    )
    assert _upward_imports(planted) == ["from drl_trading.policy.mlflow_pyfunc import X"]
