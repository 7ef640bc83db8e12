"""Predictors held in memory by model name and version: the fake beside the `ModelSource` port.

Versions are numbered 1, 2, ... per name in the order they are added, and references follow the
model registries' grammar (``NAME``, ``NAME@alias``, ``NAME/3``, optionally ``models:/``; a bare
name means the champion, else the latest version), so a test that moves an alias here sees what
inference would see from a registry, without packages on disk.
"""

from __future__ import annotations

from drl_trading.common.model_registry import (
    parse_model_ref,
    select_version,
    unknown_model_error,
    validate_alias,
    validate_model_name,
)
from drl_trading.inference.core.ports import LoadedModel
from drl_trading.policy.predictor import Predictor


class InMemoryModelSource:
    def __init__(self) -> None:
        self._versions: dict[str, dict[str, Predictor]] = {}
        self._aliases: dict[str, dict[str, str]] = {}

    def add(self, name: str, predictor: Predictor) -> str:
        """Stores ``predictor`` as the next version of ``name``; returns that version."""
        validate_model_name(name)
        versions = self._versions.setdefault(name, {})
        self._aliases.setdefault(name, {})
        version = str(len(versions) + 1)
        versions[version] = predictor
        return version

    def set_alias(self, name: str, alias: str, version: str) -> None:
        validate_alias(alias)
        self._select(f"{name}/{version}")
        self._aliases[name][alias] = version

    def resolve(self, ref: str) -> str:
        return self._select(ref)[1]

    def load(self, ref: str) -> LoadedModel:
        name, version = self._select(ref)
        return LoadedModel(name=name, version=version, predictor=self._versions[name][version])

    def _select(self, ref: str) -> tuple[str, str]:
        parsed = parse_model_ref(ref)
        versions = self._versions.get(parsed.name)
        if versions is None:
            raise unknown_model_error(parsed.name, list(self._versions))
        chosen = select_version(parsed, dict.fromkeys(versions, ""), self._aliases[parsed.name])
        return chosen.name, chosen.version
