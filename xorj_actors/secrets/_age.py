"""How old a credential's value is, as its source tells: dated, undated, or unreadable."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["AgeState", "SecretAge"]


class AgeState(enum.StrEnum):
    """What a source could say of a value's age."""

    #: The source dates its values (a file's mtime, a Secrets Manager version's CreatedDate).
    DATED = "dated"
    #: The source keeps no date (the environment), or holds no value under the name.
    UNDATED = "undated"
    #: The source dates its values but could not be asked now (Secrets Manager away, a stat
    #: refused): nothing is known, and nothing may be decided from it (no rotation).
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class SecretAge:
    """A value's age: ``seconds`` when :attr:`state` is DATED; ``problem`` when UNREADABLE."""

    state: AgeState
    seconds: float | None = None
    problem: str | None = None

    @classmethod
    def dated(cls, seconds: float) -> SecretAge:
        return cls(AgeState.DATED, max(0.0, seconds))

    @classmethod
    def undated(cls) -> SecretAge:
        return cls(AgeState.UNDATED)

    @classmethod
    def unreadable(cls, problem: str) -> SecretAge:
        return cls(AgeState.UNREADABLE, problem=problem)
