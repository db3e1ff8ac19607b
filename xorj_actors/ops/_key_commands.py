"""The debug socket's key commands (docs/SECURITY.md, "Key rotation"): the engine answers them
through its views, so that the ops package knows nothing of the rotator."""

from __future__ import annotations

from typing import Any

from xorj_actors.secrets import OwnedKey

__all__ = ["KeyCommands"]


class KeyCommands:
    """``keys`` and ``rotate-key``, mixed into :class:`~xorj_actors.ops._commands.Commands`."""

    def _view(self, name: str, *args: Any) -> Any:  # Commands's
        raise NotImplementedError

    def keys(self, _: None) -> Any:
        """Every credential's source and age, and whether the engine rotates it (never a value)."""
        return self._view("keys")

    def rotate_key(self, key: OwnedKey) -> Any:
        """Rotate one of the engine's own keys now (audited): its fingerprints, never a value."""
        return self._view("rotate_key", key)
