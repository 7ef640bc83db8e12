"""The settings model seen as a tree of keys: every key's path, kind, default and description.

One walk serves three readers, so that they cannot disagree with the model: the environment check
(which ``DRL_TRADING_*`` names mean a setting, and the closest one to a name that means none), the
generated `configs/example.yaml` (every key with its default and description), and the test that
compares the two.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

NodeKind = Literal["section", "mapping", "value"]
"""section: a nested model (its keys are nodes too); mapping: a dict field, any sub-key allowed;
value: anything else (scalars, lists, tuples)."""


@dataclass(frozen=True)
class SettingNode:
    """One key of the settings tree."""

    path: tuple[str, ...]
    kind: NodeKind
    field: FieldInfo
    default: Any
    """The default as a Python value (a model instance for a section); ``PydanticUndefined`` for a
    required key (inside an optional section such as ``preprocess.feature_set``)."""
    has_default_children: bool
    """A section whose keys have defaults here (its default is an instance, not None)."""

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def secret(self) -> bool:
        """A ``SecretStr`` key: never shown, never written into an example."""
        return SecretStr in _leaf_types(self.field.annotation)

    @property
    def takes_json(self) -> bool:
        """pydantic-settings parses this key's environment value as JSON: a section, a mapping,
        or a list/tuple/set value."""
        if self.kind != "value":
            return True
        return any(
            typing.get_origin(t) in (list, tuple, set, frozenset)
            for t in _leaf_types(self.field.annotation)
        )

    @property
    def choices(self) -> tuple[str, ...]:
        """The values a Literal or Enum key accepts, as written in YAML."""
        out: list[str] = []
        for t in _members(self.field.annotation):
            if typing.get_origin(t) is Literal:
                out += [str(a) for a in typing.get_args(t)]
            elif isinstance(t, type) and issubclass(t, Enum):
                out += [str(m.value) for m in t]
        return tuple(out)


def walk(
    model: type[BaseModel], instance: BaseModel | None = None, prefix: tuple[str, ...] = ()
) -> Iterator[SettingNode]:
    """Every key of ``model``, depth first in declaration order. Defaults are read from
    ``instance`` when given (a nested section's default may differ from its class's own field
    defaults), else from the field declarations."""
    for name, field in model.model_fields.items():
        if instance is not None:
            default = getattr(instance, name)
        else:
            default = field.get_default(call_default_factory=True)
        path = (*prefix, name)
        sub = _section_model(field.annotation)
        if sub is not None:
            child = default if isinstance(default, sub) else None
            yield SettingNode(path, "section", field, default, child is not None)
            yield from walk(sub, child, path)
        elif _is_mapping(field.annotation):
            yield SettingNode(path, "mapping", field, default, False)
        else:
            yield SettingNode(path, "value", field, default, False)


def variable_name(path: Iterable[str], prefix: str, delimiter: str) -> str:
    """The environment variable of a key, as pydantic-settings matches it (case-insensitive,
    written in capitals here)."""
    return (prefix + delimiter.join(path)).upper()


@dataclass(frozen=True)
class UnknownVariable:
    """An environment variable with the settings prefix that names no setting (and is ignored)."""

    name: str
    closest: str | None
    hint: str
    """Where to look when nothing is close (e.g. the command that lists every setting)."""

    def message(self) -> str:
        if self.closest is not None:
            return f"{self.name} names no setting and is ignored; did you mean {self.closest}?"
        return f"{self.name} names no setting and is ignored; {self.hint}"


def unknown_variables(
    environ: Mapping[str, str],
    nodes: Iterable[SettingNode],
    *,
    prefix: str,
    delimiter: str,
    also_known: Iterable[str] = (),
    hint: str = "",
) -> tuple[UnknownVariable, ...]:
    """The variables of ``environ`` that start with ``prefix`` (any case) and name no key of
    ``nodes`` nor one of ``also_known`` (variables read elsewhere, e.g. by the CLI), each with the
    closest valid name: one that differs only in the number of underscores first (the usual
    mistake: ``_`` where the nested delimiter ``__`` is needed), else difflib's closest."""
    node_list = list(nodes)
    exact = {variable_name(n.path, prefix, delimiter) for n in node_list}
    exact |= {v.upper() for v in also_known}
    open_prefixes = tuple(
        variable_name(n.path, prefix, delimiter) + delimiter.upper()
        for n in node_list
        if n.kind == "mapping"
    )
    valid = sorted(exact)
    squeezed = {_squeeze(v): v for v in valid}
    bodies = {v[len(prefix) :]: v for v in valid}
    out: list[UnknownVariable] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(prefix.upper()) or upper in exact:
            continue
        if upper.startswith(open_prefixes):
            continue
        closest = squeezed.get(_squeeze(upper))
        if closest is None:
            near = difflib.get_close_matches(upper[len(prefix) :], list(bodies), n=1)
            closest = bodies[near[0]] if near else None
        out.append(UnknownVariable(name, closest, hint))
    return tuple(out)


def _squeeze(name: str) -> str:
    """A name with every run of underscores made one: ``A__B_C`` and ``A_B__C`` are the same."""
    return "_".join(part for part in name.split("_") if part)


def _members(annotation: Any) -> tuple[Any, ...]:
    """The members of a union (``X | None``), or the annotation itself."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return (annotation,)


def _leaf_types(annotation: Any) -> tuple[Any, ...]:
    return tuple(m for m in _members(annotation) if m is not type(None))


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _section_model(annotation: Any) -> type[BaseModel] | None:
    members = _leaf_types(annotation)
    if len(members) == 1 and _is_model(members[0]):
        model: type[BaseModel] = members[0]
        return model
    return None


def _is_mapping(annotation: Any) -> bool:
    members = _leaf_types(annotation)
    return len(members) == 1 and typing.get_origin(members[0]) in (dict, Mapping)
