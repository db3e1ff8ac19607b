"""The values kept in the cluster's buckets, and their JSON (version 1, strict both ways).

A record that does not parse is a :class:`ClusterDataError`: never guessed at, never skipped
silently by a caller that decides ownership or a halt from it.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from typing import Any, TypeVar

from xorj_actors.cluster._errors import ClusterDataError
from xorj_actors.kill_switch import KillSwitchState
from xorj_actors.messages import HaltMode
from xorj_actors.strict_json import JSONRefused, loads

__all__ = [
    "HaltAck",
    "HaltRecord",
    "HaltState",
    "LeaseHolder",
    "LeaseInfo",
    "MemberRecord",
    "NO_HALT",
    "decode",
    "encode",
]

#: Format version written in every record; another version is refused, not guessed.
VERSION = 1


class HaltState(enum.StrEnum):
    """The cluster's halt: open (every node halted) or clear."""

    CLEAR = "clear"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """Who holds a lease: the node and its incarnation (one process run).

    Two processes started with the same node id by mistake differ by incarnation, and a node
    restarted does not mistake its previous run's leases for its own.
    """

    node_id: str
    incarnation: str
    #: Wall time the lease was first acquired (informational).
    acquired_at: float


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A lease as read from the bucket: the vault, its holder and the KV revision."""

    vault_id: str
    holder: LeaseHolder
    revision: int


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A node's membership record, rewritten at every heartbeat."""

    node_id: str
    incarnation: str
    started_at: float
    #: Wall time of this heartbeat, by the writer's clock.
    heartbeat_at: float
    owned_vaults: int
    kill_switch: KillSwitchState


@dataclass(frozen=True, slots=True)
class HaltRecord:
    """The cluster halt: its epoch (one step per halt opened) and whether it is open."""

    epoch: int
    state: HaltState
    reason: str = ""
    #: The node that opened (or cleared) it.
    node_id: str = ""
    at: float = 0.0
    #: How every node halts for it (the opening node's local halt mode).
    mode: HaltMode = HaltMode.EMERGENCY

    @property
    def halted(self) -> bool:
        return self.state is HaltState.HALTED


#: The halt before any was ever opened (the key is absent).
NO_HALT = HaltRecord(epoch=0, state=HaltState.CLEAR)


@dataclass(frozen=True, slots=True)
class HaltAck:
    """A node's answer to a cluster halt epoch: how many actors acked and which did not."""

    epoch: int
    node_id: str
    acked: int
    missing: tuple[str, ...]
    at: float

    @property
    def complete(self) -> bool:
        return not self.missing


Record = LeaseHolder | MemberRecord | HaltRecord | HaltAck
R = TypeVar("R", LeaseHolder, MemberRecord, HaltRecord, HaltAck)

_FIELDS: dict[type, dict[str, type | tuple[type, ...]]] = {
    LeaseHolder: {"node_id": str, "incarnation": str, "acquired_at": float},
    MemberRecord: {"node_id": str, "incarnation": str, "started_at": float, "heartbeat_at": float,
                   "owned_vaults": int, "kill_switch": KillSwitchState},
    HaltRecord: {"epoch": int, "state": HaltState, "reason": str, "node_id": str, "at": float, "mode": HaltMode},
    HaltAck: {"epoch": int, "node_id": str, "acked": int, "missing": tuple, "at": float},
}


def encode(record: Record) -> bytes:
    """The record's JSON bytes."""
    out: dict[str, Any] = {"v": VERSION}
    for name in _FIELDS[type(record)]:
        value = getattr(record, name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, enum.Enum):
            value = value.value
        out[name] = value
    return json.dumps(out, separators=(",", ":"), sort_keys=True).encode()


def _field(kind: type, name: str, expected: type | tuple[type, ...], value: Any) -> Any:
    where = f"{kind.__name__}.{name}"
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ClusterDataError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ClusterDataError(f"{where}: expected an integer >= 0, got {value!r}")
        return value
    if expected is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ClusterDataError(f"{where}: expected a list of strings")
        return tuple(value)
    if isinstance(expected, type) and issubclass(expected, enum.Enum):
        try:
            return expected(value)
        except ValueError:
            raise ClusterDataError(f"{where}: unknown value {value!r}") from None
    if not isinstance(value, str):
        raise ClusterDataError(f"{where}: expected a string, got {value!r}")
    return value


def decode(kind: type[R], data: bytes | None) -> R:
    """Parse ``data`` as a ``kind`` record; :class:`ClusterDataError` says what is wrong."""
    try:
        table = loads(data or b"")
    except JSONRefused as exc:
        raise ClusterDataError(f"{kind.__name__}: not valid JSON: {exc}") from None
    if not isinstance(table, dict):
        raise ClusterDataError(f"{kind.__name__}: expected a JSON object")
    if table.get("v") != VERSION:
        raise ClusterDataError(f"{kind.__name__}: format version {table.get('v')!r}, this build reads {VERSION}")
    fields = _FIELDS[kind]
    unknown = set(table) - set(fields) - {"v"}
    missing = set(fields) - set(table)
    if unknown or missing:
        raise ClusterDataError(f"{kind.__name__}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    return kind(**{name: _field(kind, name, expected, table[name]) for name, expected in fields.items()})
