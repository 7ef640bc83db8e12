"""configs/example.yaml lists every section and key with its default (issue 11, item 5), and
cannot drift: it is generated from the settings model, and these tests fail when a setting is
added, removed or its default changes without regenerating it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from drl_trading.app.example_config import example_yaml
from drl_trading.app.settings import load_settings, setting_nodes
from drl_trading.cli.app import app

EXAMPLE = Path(__file__).parents[2] / "configs" / "example.yaml"
REGENERATE = "regenerate it: drl-trading config example --out configs/example.yaml"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DRL_TRADING_"):
            monkeypatch.delenv(name)


def _flatten(data: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Leaf values by path; an empty mapping is a leaf."""
    if isinstance(data, dict) and data:
        out: dict[tuple[str, ...], Any] = {}
        for key, value in data.items():
            out |= _flatten(value, (*prefix, str(key)))
        return out
    return {prefix: data}


def test_the_file_is_what_the_model_generates() -> None:
    assert EXAMPLE.read_text() == example_yaml(), REGENERATE


def test_every_key_is_listed_with_its_default() -> None:
    """Checked against the defaults the settings load with, not against the generator."""
    defaults = load_settings()
    secrets = {n.path for n in setting_nodes() if n.secret}
    assert secrets == {
        ("bus", "kafka", "sasl_password"),
        ("postgres", "password"),
        ("tuning", "url"),
    }
    expected = {
        p: v for p, v in _flatten(defaults.model_dump(mode="json")).items() if p not in secrets
    }
    listed = _flatten(yaml.safe_load(EXAMPLE.read_text()))
    missing = sorted(".".join(p) for p in expected.keys() - listed.keys())
    extra = sorted(".".join(p) for p in listed.keys() - expected.keys())
    assert not missing and not extra, f"missing {missing}, not settings {extra}; {REGENERATE}"
    # YAML loads durations and paths as strings: compare through the model
    assert load_settings(EXAMPLE).model_dump() == defaults.model_dump(), REGENERATE


def test_secrets_are_named_but_never_written() -> None:
    text = EXAMPLE.read_text()
    loaded = yaml.safe_load(text)
    assert "password" not in loaded["postgres"]
    assert "sasl_password" not in loaded["bus"]["kafka"]
    assert "# password: secret, not shown; set DRL_TRADING_POSTGRES__PASSWORD" in text
    assert "# sasl_password: secret, not shown; set DRL_TRADING_BUS__KAFKA__SASL_PASSWORD" in text


def test_every_key_has_a_comment() -> None:
    """A description (or the values a choice accepts) for every key the example shows: the
    comment is the only documentation of many of them."""
    nodes = setting_nodes()
    sections = {n.path: n for n in nodes if n.kind == "section"}
    shown = [
        n
        for n in nodes
        if n.kind != "section"
        and all(sections[n.path[:i]].has_default_children for i in range(1, len(n.path)))
    ]
    assert len(shown) > 100
    undocumented = [n.dotted for n in shown if not (n.field.description or n.choices)]
    assert undocumented == [], "add a Field(description=...) to each"


def test_config_example_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "example.yaml"
    result = CliRunner().invoke(app, ["config", "example", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == example_yaml()
    printed = CliRunner().invoke(app, ["config", "example"])
    assert printed.exit_code == 0
    assert printed.stdout == example_yaml()
