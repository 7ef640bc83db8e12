"""`configs/example.yaml`, generated from the settings model: every section and key with its
default and a comment from its description, so that the example cannot drift from the code
(``drl-trading config example --out configs/example.yaml`` rewrites it; a test compares).

Secrets (``SecretStr`` keys) are listed as comments only: an example must not hold a password,
and the environment or a ``*_file`` key is where they belong.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator, Sequence
from enum import Enum
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter

from drl_trading.app.settings import ENV_DELIMITER, ENV_PREFIX, setting_nodes
from drl_trading.app.settings_tree import SettingNode, variable_name

WIDTH = 99
"""Comment lines are wrapped to this many columns."""

HEADER = """\
# drl-trading configuration: every section and key, with its default. Every key is optional.
# Generated from the settings model by `drl-trading config example --out configs/example.yaml`
# (tests/unit/test_example_config.py fails when this file and the model disagree).
#
# Load with: drl-trading --config configs/example.yaml COMMAND ...
# Each command takes a value from, highest first: its command-line flag, the environment, this
# file, the default. Any key can come from the environment as DRL_TRADING_<SECTION>__<KEY>
# (keys joined by two underscores), e.g. DRL_TRADING_INGEST__VALIDATION__POLICY=quarantine;
# lists, sections and mappings there take JSON. A DRL_TRADING_* variable that names no key is
# ignored with a warning naming the closest one. Secrets are not shown: set them in the
# environment or through their *_file key. `drl-trading config show` prints what is in force.
"""


def example_yaml() -> str:
    """The whole example file as text."""
    nodes = setting_nodes()
    lines = HEADER.splitlines()
    top = [n for n in nodes if len(n.path) == 1]
    for node in top:
        lines.append("")
        lines += _render(node, nodes, depth=0)
    return "\n".join(lines) + "\n"


def _render(node: SettingNode, nodes: Sequence[SettingNode], depth: int) -> Iterator[str]:
    indent = "  " * depth
    key = node.path[-1]
    yield from _comment(node, indent)
    if node.secret:
        env = variable_name(node.path, ENV_PREFIX, ENV_DELIMITER)
        yield f"{indent}# {key}: secret, not shown; set {env}"
        return
    if node.kind == "section" and node.has_default_children:
        yield f"{indent}{key}:"
        for child in nodes:
            if len(child.path) == len(node.path) + 1 and child.path[:-1] == node.path:
                yield from _render(child, nodes, depth + 1)
        return
    value = _json_value(node)
    if node.kind == "mapping" and isinstance(value, dict) and value:
        yield f"{indent}{key}:"
        for sub_key, sub_value in value.items():
            yield f"{indent}  {_scalar(sub_key)}: {_scalar(sub_value)}"
        return
    yield f"{indent}{key}: {_scalar(value)}"


def _comment(node: SettingNode, indent: str) -> Iterator[str]:
    text = node.field.description or ""
    if node.kind == "section" and not text:
        model = type(node.default) if isinstance(node.default, BaseModel) else None
        text = _first_sentence(model.__doc__) if model is not None else ""
    choices = node.choices
    if choices and not all(re.search(rf"\b{re.escape(c)}\b", text) for c in choices):
        text = f"{text} [{' | '.join(choices)}]".strip()
    if not text:
        return
    for line in textwrap.wrap(text, width=WIDTH - len(indent) - 2):
        yield f"{indent}# {line}"


def _first_sentence(doc: str | None) -> str:
    if not doc:
        return ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    head, dot, _ = paragraph.partition(". ")
    return head + ("." if dot else "")


def _json_value(node: SettingNode) -> Any:
    """The default as YAML would hold it (enums by value, durations as ISO 8601, paths as
    strings), through the key's own pydantic type."""
    value = node.default
    if isinstance(value, Enum):
        return value.value
    annotation = node.field.annotation
    return TypeAdapter(Any if annotation is None else annotation).dump_python(value, mode="json")


def _scalar(value: Any) -> str:
    """One value in YAML flow style on one line (lists as ``[a, b]``, mappings as ``{}``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000, sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...").strip()
