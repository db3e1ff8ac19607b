"""The debug socket's view-backed commands, the key commands among them (docs/SECURITY.md, "Key
rotation"): the engine answers them through its views, so that the ops package knows nothing of
the rotator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from xorj_actors.ops._args import RequestError
from xorj_actors.secrets import OwnedKey

__all__ = ["KeyCommands"]


class KeyCommands:
    """Commands answered by an engine view: ``keys``, ``rotate-key``; the base of
    :class:`~xorj_actors.ops._commands.Commands`, which sets :attr:`views`."""

    #: The engine's views by name (``Commands.__init__``).
    views: Mapping[str, Callable[..., Any]]

    def _view(self, name: str, *args: Any) -> Any:
        view = self.views.get(name)
        if view is None:
            raise RequestError("unavailable", f"this engine has no {name}")
        return view(*args)

    def keys(self, _: None) -> Any:
        """Every credential's source and age, and whether the engine rotates it (never a value)."""
        return self._view("keys")

    def rotate_key(self, key: OwnedKey) -> Any:
        """Rotate one of the engine's own keys now (audited): its fingerprints, never a value."""
        return self._view("rotate_key", key)
