"""Package names that load on first use.

``xorj_actors.config`` imports the settings module of many packages, and importing
``pkg.settings`` runs ``pkg/__init__.py`` first. Every command loads the config (``ctl`` when an
operator needs an answer now, ``audit verify``, ``check``), so a package whose ``__init__``
imported its actors would make each of them import the whole engine: loading the config took
1.83x as long (median 1.89 s against 1.05 s, whole process) when chain, execution, vaults,
localnet and signers exported eagerly. There is no import cycle behind this any more (no package
imports the config; ``tests/config/test_config_imports.py``): it is start-up time only.
Such packages export lazily: ``__getattr__ = lazy_exports(__name__, {"Name": "_module"})``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing ``name`` from ``package.<homes[name]>`` when first asked."""
    module = sys.modules[package]

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(module, name, value)  # later lookups skip this function
        return value

    return __getattr__
