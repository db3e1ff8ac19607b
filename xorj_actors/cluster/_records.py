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
from xorj_actors.kill_switch import ClusterProof, KillSwitchState
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
    "VaultSet",
    "decode",
    "decode_proof",
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
    #: On a clear: the cluster recovery's proof, which every node verifies before it resumes.
    proof: ClusterProof | None = None
    #: Read only: why the record's ``proof`` did not parse (the record still does: a follower
    #: refuses it as a security violation, it does not halt for unreadable data).
    proof_problem: str = ""

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


@dataclass(frozen=True, slots=True)
class VaultSet:
    """The cluster's configured vaults, which placement spreads over the live nodes; changed by
    ``ctl vault-add`` / ``vault-remove`` on any node (compare-and-swap on the revision)."""

    #: Every configured vault id, sorted, each once.
    vaults: tuple[str, ...]
    #: The node that wrote this version, and when (wall).
    node_id: str
    at: float
    #: What the last change did, for the operator (``seeded from [vaults] count = 10``,
    #: ``added vault-0010 by alice``).
    change: str


Record = LeaseHolder | MemberRecord | HaltRecord | HaltAck | VaultSet
R = TypeVar("R", LeaseHolder, MemberRecord, HaltRecord, HaltAck, VaultSet)

_FIELDS: dict[type, dict[str, type | tuple[type, ...]]] = {
    LeaseHolder: {"node_id": str, "incarnation": str, "acquired_at": float},
    MemberRecord: {"node_id": str, "incarnation": str, "started_at": float, "heartbeat_at": float,
                   "owned_vaults": int, "kill_switch": KillSwitchState},
    HaltRecord: {"epoch": int, "state": HaltState, "reason": str, "node_id": str, "at": float, "mode": HaltMode,
                 "proof": ClusterProof},
    HaltAck: {"epoch": int, "node_id": str, "acked": int, "missing": tuple, "at": float},
    VaultSet: {"vaults": tuple, "node_id": str, "at": float, "change": str},
}


#: Keys a record may leave out (records written before them): read as None.
_OPTIONAL = frozenset({"proof"})
#: Bounds of a proof as read: more is not a proof, whatever it says.
_MAX_AUTHORISATIONS, _MAX_KEY_ID, _MAX_OPERATOR = 16, 128, 100
_PROOF_KEYS = frozenset({"cluster_epoch", "nonce_sha256", "timestamp", "authorisations", "operator", "local_epoch"})


def encode(record: Record) -> bytes:
    """The record's JSON bytes."""
    out: dict[str, Any] = {"v": VERSION}
    for name in _FIELDS[type(record)]:
        value = getattr(record, name)
        if isinstance(value, ClusterProof):
            value = _proof_json(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, enum.Enum):
            value = value.value
        out[name] = value
    return json.dumps(out, separators=(",", ":"), sort_keys=True).encode()


def _proof_json(proof: ClusterProof) -> dict[str, Any]:
    return {
        "cluster_epoch": proof.cluster_epoch,
        "nonce_sha256": proof.nonce_sha256,
        "timestamp": proof.timestamp,
        "authorisations": [list(a) for a in proof.authorisations],
        "operator": proof.operator,
        "local_epoch": proof.local_epoch,
    }


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _short(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def decode_proof(value: Any) -> ClusterProof:
    """A proof as written by :func:`encode`; ClusterDataError says what is wrong. Only its shape
    is checked here: whether it authorises anything is the kill switch's to verify."""
    if not isinstance(value, dict) or set(value) != _PROOF_KEYS:
        raise ClusterDataError(f"proof: expected an object with the keys {sorted(_PROOF_KEYS)}")
    if not (_int(value["cluster_epoch"]) and _int(value["timestamp"]) and _int(value["local_epoch"])):
        raise ClusterDataError("proof: cluster_epoch, timestamp and local_epoch must be integers >= 0")
    if not (_short(value["nonce_sha256"], 64) and isinstance(value["operator"], str) and len(value["operator"]) <= _MAX_OPERATOR):
        raise ClusterDataError("proof: nonce_sha256 or operator is not a short string")
    auths = value["authorisations"]
    if not isinstance(auths, list) or len(auths) > _MAX_AUTHORISATIONS or not all(
        isinstance(a, list) and len(a) == 2 and _short(a[0], _MAX_KEY_ID) and _short(a[1], 64) for a in auths
    ):
        raise ClusterDataError(f"proof: authorisations must be at most {_MAX_AUTHORISATIONS} [key id, hex HMAC] pairs")
    return ClusterProof(
        cluster_epoch=value["cluster_epoch"],
        nonce_sha256=value["nonce_sha256"],
        timestamp=value["timestamp"],
        authorisations=tuple((a[0], a[1]) for a in auths),
        operator=value["operator"],
        local_epoch=value["local_epoch"],
    )


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
    missing = set(fields) - set(table) - _OPTIONAL
    if unknown or missing:
        raise ClusterDataError(f"{kind.__name__}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    values: dict[str, Any] = {}
    for name, expected in fields.items():
        if expected is ClusterProof:
            values.update(_proof_field(table.get(name)))
        else:
            values[name] = _field(kind, name, expected, table[name])
    return kind(**values)


def _proof_field(value: Any) -> dict[str, Any]:
    """``proof`` (None when absent or null), or ``proof_problem`` when it does not parse."""
    if value is None:
        return {"proof": None}
    try:
        return {"proof": decode_proof(value)}
    except ClusterDataError as exc:
        return {"proof": None, "proof_problem": str(exc)}
