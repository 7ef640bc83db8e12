"""Feast imported the lean way (common/adapter/feast_import.py): without typeguard instrumenting
its classes and without importing torch, yet a working Feast whose torch wrapper still hands out
torch when asked. Each check runs in a new interpreter: this one may have imported Feast."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from drl_trading.common.adapter import feast_import


def _run(code: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_feast_imports_without_torch_and_leaves_typeguard_as_it_was() -> None:
    seen = _run(
        "import json, sys, typeguard\n"
        "before = typeguard.typechecked\n"
        "from drl_trading.common.adapter.feast_import import import_feast\n"
        "feast = import_feast()\n"
        "import feast.entity, feast.infra.online_stores.sqlite as sqlite\n"
        "from feast.infra.offline_stores import offline_store\n"
        "torch_at_import = 'torch' in sys.modules\n"
        "torch = offline_store.get_torch()\n"
        "print(json.dumps({'torch_at_import': torch_at_import,\n"
        "    'restored': typeguard.typechecked is before,\n"
        "    'again': import_feast() is feast,\n"
        "    'store': feast.FeatureStore.__name__,\n"
        # typeguard's instrumented functions are compiled from a rewritten tree: their code
        # names typeguard's checkers; Feast's own ones do not (the test below)
        "    'instrumented': [f.__qualname__ for f in (feast.entity.Entity.__init__,\n"
        "        sqlite.SqliteOnlineStore.online_write_batch)\n"
        "        if any(n.startswith('check_') for n in f.__code__.co_names)],\n"
        "    'torch': torch.__name__, 'torch_loaded': 'torch' in sys.modules}))\n"
    )
    assert seen == {
        "torch_at_import": False,
        "restored": True,
        "again": True,
        "store": "FeatureStore",
        "instrumented": [],
        "torch": "torch",
        "torch_loaded": True,
    }


def test_the_instrumentation_check_sees_typeguards_checks() -> None:
    """The check above can fail: a class that typeguard instruments has its checker's names in
    its methods' code (in this process: importing Feast unchanged costs seconds)."""
    import typeguard

    class Plain:
        def __init__(self, name: str) -> None:
            self.name = name

    names = typeguard.typechecked(Plain).__init__.__code__.co_names
    assert any(n.startswith("check_") for n in names)


def test_a_missing_torch_is_an_import_error_naming_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper = feast_import._lazy_torch_wrapper()
    monkeypatch.setitem(sys.modules, "torch", None)  # type: ignore[arg-type]
    with pytest.raises(ImportError, match="Torch is not available"):
        wrapper.get_torch()


def test_feast_reads_only_get_torch_of_its_torch_wrapper() -> None:
    """The replacement wrapper has ``get_torch`` only: a Feast that imports another name from
    it (after an upgrade) must fail here, not in a user's process."""
    import importlib.util

    spec = importlib.util.find_spec("feast")
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    names: set[str] = set()
    for path in root.rglob("*.py"):
        if path.name == "torch_wrapper.py" or "torch_wrapper" not in path.read_text("utf-8"):
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == feast_import.FEAST_TORCH_WRAPPER:
                names |= {alias.name for alias in node.names}
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "torch_wrapper"
            ):
                names.add(node.attr)
    assert names == {"get_torch"}
    assert callable(feast_import._lazy_torch_wrapper().get_torch)


def test_unchecked_returns_its_target_with_or_without_options() -> None:
    def f() -> int:
        return 1

    assert feast_import._unchecked(f) is f
    assert feast_import._unchecked(collection_check_strategy=None)(f) is f
