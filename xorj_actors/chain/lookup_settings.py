"""Settings of the address-lookup-table cache (kept apart from the cache: a config may import it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LookupTableSettings"]


@dataclass(frozen=True, slots=True)
class LookupTableSettings:
    """How many tables are kept, and for how long, before they are read again."""

    capacity: int = 256
    max_age_s: float = 300.0

    def validate(self) -> None:
        if not 1 <= self.capacity <= 100_000:
            raise ValueError("capacity: must be between 1 and 100000")
        if not 0 <= self.max_age_s <= 86_400:
            raise ValueError("max_age_s: must be between 0 and 86400 seconds")
