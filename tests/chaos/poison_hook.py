"""Wrap the stream consumer's handler in the poisoner the moment ``streams.consumer`` is imported."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.chaos.poison import Poisoner

TARGET = "streams.consumer"


class _WrapAfterLoad(importlib.abc.Loader):
    def __init__(self, loader: Any, poisoner: Poisoner) -> None:
        self.loader = loader
        self.poisoner = poisoner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        module.lambda_handler = self.poisoner.wrap(module.lambda_handler)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, poisoner: Poisoner) -> None:
        self.poisoner = poisoner

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _WrapAfterLoad(spec.loader, self.poisoner)
        return spec


def install(percent: float, failures: int, ledger: str) -> None:
    sys.meta_path.insert(0, _Finder(Poisoner(percent, failures, Path(ledger))))
