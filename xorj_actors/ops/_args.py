"""The operators' commands' arguments, checked in one place whatever the transport.

A command's arguments are a JSON object. Each parser checks it against the command's spec
(unknown keys and wrong types are refused) and the command's own rules, and returns a typed
value for :class:`~xorj_actors.ops._commands.Commands`. Bad input raises
:class:`RequestError` ``bad_request`` before anything is asked or changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from xorj_actors.kill_switch import EnterMaintenance, Recover
from xorj_actors.limits import REASON_LIMIT
from xorj_actors.messages import HaltMode
from xorj_actors.secrets import OwnedKey
from xorj_actors.vaults import MAX_VAULT_INDEX, MAX_VAULTS_PER_ADD, VAULT_ID

__all__ = [
    "MAX_OPERATOR_CHARS",
    "MAX_REASON_CHARS",
    "PARSERS",
    "ActorQuery",
    "FlattenArgs",
    "HaltArgs",
    "OperatorArgs",
    "RequestError",
    "VaultAddArgs",
    "VaultRemoveArgs",
    "checked",
    "parse_halt",
    "parse_recover",
]

#: What the drawdown monitor keeps of an operator's name and reason; longer is refused.
MAX_OPERATOR_CHARS: Final = 100
MAX_REASON_CHARS: Final = REASON_LIMIT

#: ``{name: (type, required)}``.
Spec = Mapping[str, tuple[type | tuple[type, ...], bool]]


class RequestError(Exception):
    """A refused request: ``code`` (bad_request, not_found, unavailable, timeout, refused,
    internal) and a message for the operator."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def checked(args: Mapping[str, Any], spec: Spec) -> dict[str, Any]:
    """Check ``args`` against {name: (type, required)}; refuse unknown keys and wrong types."""
    unknown = set(args) - set(spec)
    if unknown:
        raise RequestError("bad_request", f"unknown argument(s): {', '.join(sorted(unknown))}")
    out = {}
    for name, (tp, required) in spec.items():
        if name not in args:
            if required:
                raise RequestError("bad_request", f"missing argument: {name}")
            continue
        value = args[name]
        if not isinstance(value, tp) or (isinstance(value, bool) and tp is int):
            raise RequestError("bad_request", f"argument {name} has the wrong type")
        out[name] = value
    return out


def _text(a: Mapping[str, Any], name: str, limit: int, default: str | None = None) -> str:
    """A non-blank string of at most ``limit`` characters, stripped."""
    value = a.get(name, default)
    if value is None or not value.strip():
        raise RequestError("bad_request", f"argument {name} must not be empty")
    if len(value) > limit:
        raise RequestError("bad_request", f"argument {name} is longer than {limit} characters")
    return value.strip()


def _vault_id(name: str) -> str:
    if not VAULT_ID.fullmatch(name):
        raise RequestError("bad_request", f"vault {name[:40]!r} is not a vault id (vault-0007)")
    return name


# -- the typed arguments ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActorQuery:
    """Exactly one of ``urn`` and ``name``."""

    urn: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class HaltArgs:
    mode: HaltMode
    reason: str


@dataclass(frozen=True, slots=True)
class OperatorArgs:
    """Who asks, and why (both recorded in the audit trail)."""

    operator: str
    reason: str


@dataclass(frozen=True, slots=True)
class FlattenArgs:
    #: Empty: every vault.
    vaults: tuple[str, ...]
    operator: str
    reason: str


@dataclass(frozen=True, slots=True)
class VaultAddArgs:
    count: int
    #: None: after the highest index.
    index: int | None
    operator: str


@dataclass(frozen=True, slots=True)
class VaultRemoveArgs:
    vault: str
    force: bool
    operator: str
    reason: str


# -- one parser a command ---------------------------------------------------------------------


def _no_args(args: Mapping[str, Any]) -> None:
    checked(args, {})


def _actor(args: Mapping[str, Any]) -> ActorQuery:
    a = checked(args, {"urn": (str, False), "name": (str, False)})
    if len(a) != 1:
        raise RequestError("bad_request", "give exactly one of urn or name")
    return ActorQuery(urn=a.get("urn"), name=a.get("name"))


def parse_halt(args: Mapping[str, Any], default_reason: str = "operator halt over the debug socket") -> HaltArgs:
    """Mode (graceful or emergency, default emergency) and reason, cut to :data:`MAX_REASON_CHARS`."""
    a = checked(args, {"mode": (str, False), "reason": (str, False)})
    mode = a.get("mode", HaltMode.EMERGENCY.value)
    if mode not in (HaltMode.GRACEFUL.value, HaltMode.EMERGENCY.value):
        raise RequestError("bad_request", "mode must be graceful or emergency")
    return HaltArgs(mode=HaltMode(mode), reason=a.get("reason", default_reason)[:MAX_REASON_CHARS])


def _maintenance(args: Mapping[str, Any]) -> EnterMaintenance:
    a = checked(args, {"reason": (str, False)})
    return EnterMaintenance(reason=a.get("reason", "maintenance"), source="debug_socket")


def parse_recover(args: Mapping[str, Any]) -> Recover:
    """The kill switch's :class:`Recover`: epoch, nonce, timestamp, authorisations, operator, and
    on a cluster node while the cluster is halted, cluster_epoch (what the authorisations sign)."""
    a = checked(
        args,
        {
            "epoch": (int, True),
            "nonce": (str, True),
            "timestamp": (int, True),
            "authorisations": (list, True),
            "operator": (str, False),
            "cluster_epoch": (int, False),
        },
    )
    auths = []
    for item in a["authorisations"]:
        if not (isinstance(item, dict) and set(item) == {"key_id", "hmac"}
                and all(isinstance(v, str) for v in item.values())):
            raise RequestError("bad_request", 'each authorisation is {"key_id": str, "hmac": str}')
        auths.append((item["key_id"], item["hmac"]))
    return Recover(
        epoch=a["epoch"],
        nonce=a["nonce"],
        timestamp=a["timestamp"],
        authorisations=tuple(auths),
        operator=a.get("operator", "debug_socket"),
        cluster_epoch=a.get("cluster_epoch"),
    )


def _flatten(args: Mapping[str, Any]) -> FlattenArgs:
    a = checked(args, {"vaults": (list, False), "operator": (str, True), "reason": (str, True)})
    operator = _text(a, "operator", MAX_OPERATOR_CHARS)
    reason = _text(a, "reason", MAX_REASON_CHARS)
    vaults = a.get("vaults", [])
    if len(vaults) > MAX_VAULT_INDEX + 1 or not all(isinstance(v, str) and VAULT_ID.match(v) for v in vaults):
        raise RequestError("bad_request", "vaults must be a list of vault ids (vault-0007); empty: every vault")
    return FlattenArgs(vaults=tuple(vaults), operator=operator, reason=reason)


def _strategy_refresh(args: Mapping[str, Any]) -> str:
    a = checked(args, {"reason": (str, False)})
    return _text(a, "reason", MAX_REASON_CHARS, "operator refresh over the debug socket")


def _risk_reset(args: Mapping[str, Any]) -> OperatorArgs:
    a = checked(args, {"operator": (str, True), "reason": (str, True)})
    return OperatorArgs(operator=_text(a, "operator", MAX_OPERATOR_CHARS), reason=_text(a, "reason", MAX_REASON_CHARS))


def _vaults(args: Mapping[str, Any]) -> str | None:
    a = checked(args, {"vault": (str, False)})
    return _vault_id(a["vault"]) if "vault" in a else None


def _round(args: Mapping[str, Any]) -> str:
    return _vault_id(checked(args, {"vault": (str, True)})["vault"])


def _rotate_key(args: Mapping[str, Any]) -> OwnedKey:
    key = checked(args, {"key": (str, True)})["key"]
    if key not in set(OwnedKey):
        raise RequestError("bad_request", f"key must be one of {', '.join(OwnedKey)} (the keys the engine owns)")
    return OwnedKey(key)


def _vault_add(args: Mapping[str, Any]) -> VaultAddArgs:
    a = checked(args, {"count": (int, True), "index": (int, False), "operator": (str, False)})
    count = a["count"]
    if not 1 <= count <= MAX_VAULTS_PER_ADD:
        raise RequestError("bad_request", f"count must be between 1 and {MAX_VAULTS_PER_ADD}")
    if "index" in a and a["index"] < 0:
        raise RequestError("bad_request", "index must be >= 0")
    operator = _text(a, "operator", MAX_OPERATOR_CHARS, "debug_socket")
    return VaultAddArgs(count=count, index=a.get("index"), operator=operator)


def _vault_remove(args: Mapping[str, Any]) -> VaultRemoveArgs:
    a = checked(args, {"vault": (str, True), "force": (bool, False), "operator": (str, False), "reason": (str, False)})
    force = a.get("force", False)
    operator = _text(a, "operator", MAX_OPERATOR_CHARS, "debug_socket")
    reason = _text(a, "reason", MAX_REASON_CHARS, "operator removal over the debug socket")
    return VaultRemoveArgs(vault=_vault_id(a["vault"]), force=force, operator=operator, reason=reason)


#: Each command's parser, by command name: raw JSON arguments in, what the command takes out.
PARSERS: Final[Mapping[str, Callable[[Mapping[str, Any]], Any]]] = {
    "help": _no_args,
    "tree": _no_args,
    "actor": _actor,
    "stacks": _no_args,
    "status": _no_args,
    "progress": _no_args,
    "breakers": _no_args,
    "quotas": _no_args,
    "trades": _no_args,
    "cluster": _no_args,
    "halt": parse_halt,
    "maintenance": _maintenance,
    "recover": parse_recover,
    "executor": _no_args,
    "confirmation": _no_args,
    "strategy": _no_args,
    "strategy-refresh": _strategy_refresh,
    "risk": _no_args,
    "risk-reset": _risk_reset,
    "reconcile": _no_args,
    "vaults": _vaults,
    "round": _round,
    "vault-add": _vault_add,
    "vault-remove": _vault_remove,
    "flatten": _flatten,
    "reload-secrets": _no_args,
    "keys": _no_args,
    "rotate-key": _rotate_key,
}
