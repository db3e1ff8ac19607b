"""The live view's data: the debug socket's replies turned into what each panel shows.

Pure functions over plain JSON (the replies of ``status``, ``tree``, ``trades``, ``executor``,
``breakers``, ``strategy``, ``quotas`` and ``cluster``): no socket, no terminal, so that every
rule of the view is tested in milliseconds.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from xorj_actors.kill_switch import KillSwitchState

__all__ = [
    "VAULTS_SUPERVISOR",
    "ActorRow",
    "BreakerRow",
    "Connection",
    "HaltView",
    "NodeRow",
    "QuotaRow",
    "StrategyView",
    "TradesView",
    "ViewModel",
    "build_view",
    "tree_rows",
]

#: The supervisor whose children are folded into counts by state (10,000 of them would not fit).
VAULTS_SUPERVISOR: Final = "vaults"
#: Kill switch states in which trading is halted.
_HALTED: Final = frozenset({KillSwitchState.TRIGGERED, KillSwitchState.MAINTENANCE, KillSwitchState.REDUCING})


class Connection(enum.Enum):
    """The view's link to the engine."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "DISCONNECTED"


@dataclass(frozen=True, slots=True)
class HaltView:
    """The kill switch; during a halt, its progress: ``acked`` of ``live`` actors."""

    state: str
    epoch: int
    mode: str | None
    reason: str | None
    halted: bool
    acked: int
    live: int
    missing: tuple[str, ...]
    complete: bool
    latency_s: float | None
    #: Seconds since the trigger (None when never triggered).
    since_trigger_s: float | None
    factor: float

    @property
    def progress(self) -> float:
        """Acked over live, 0..1 (1 once complete)."""
        if self.complete:
            return 1.0
        return self.acked / self.live if self.live else 0.0


@dataclass(frozen=True, slots=True)
class ActorRow:
    """A line of the tree: an actor, or the fold of the vaults (``fold`` is then their count)."""

    key: str
    name: str
    depth: int
    cls: str
    state: str
    mailbox: int
    restarts: int
    last_message: str
    fold: int | None = None


@dataclass(frozen=True, slots=True)
class TradesView:
    rate_per_s: float | None
    in_flight: int | None
    awaiting_confirmation: int | None
    p50_s: float | None
    p99_s: float | None
    outcomes: Mapping[str, int]
    window_s: float | None
    total: int | None


@dataclass(frozen=True, slots=True)
class BreakerRow:
    name: str
    state: str
    failures: int
    max_failures: int
    window_s: float
    consecutive: int
    max_consecutive: int
    open_for_s: float | None


@dataclass(frozen=True, slots=True)
class StrategyView:
    fresh: bool
    round: int | None
    #: Seconds since the last good answer (None: never).
    age_s: float | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class QuotaRow:
    endpoint: str
    used_ratio: float
    used: int
    requests: int
    window_s: float
    waiting: int
    throttled: int
    shared_with: str | None


@dataclass(frozen=True, slots=True)
class NodeRow:
    node_id: str
    this_node: bool
    alive: str
    heartbeat_age_s: float | None
    owned_vaults: int
    kill_switch: str


@dataclass(frozen=True, slots=True)
class ViewModel:
    """Everything one screen shows. A panel whose command failed is None, its error in ``errors``."""

    connection: Connection
    halt: HaltView | None = None
    tree: tuple[ActorRow, ...] = ()
    trades: TradesView | None = None
    breakers: tuple[BreakerRow, ...] = ()
    strategy: StrategyView | None = None
    quotas: tuple[QuotaRow, ...] = ()
    #: Empty when not clustered.
    nodes: tuple[NodeRow, ...] = ()
    actors: int | None = None
    uptime_s: float | None = None
    pid: int | None = None
    errors: Mapping[str, str] = field(default_factory=dict)


def _halt(status: Mapping[str, Any], now: float) -> HaltView:
    ks = status["kill_switch"]
    acked, missing = list(ks.get("acked") or []), tuple(ks.get("missing") or ())
    at = ks.get("triggered_at")
    return HaltView(
        state=ks["state"], epoch=ks["epoch"], mode=ks.get("mode"), reason=ks.get("reason"),
        halted=ks["state"] in _HALTED, acked=len(acked), live=len(acked) + len(missing), missing=missing,
        complete=bool(ks.get("complete")), latency_s=ks.get("halt_latency_s"),
        since_trigger_s=None if at is None else max(0.0, now - at), factor=ks.get("factor", 1.0),
    )


def _matches(actor: Mapping[str, Any], text: str) -> bool:
    t = text.lower()
    return t in actor["name"].lower() or t in actor["class"].lower() or t in actor["state"].lower()


def _row(a: Mapping[str, Any], depth: int) -> ActorRow:
    return ActorRow(
        key=a["urn"], name=a["name"], depth=depth, cls=a["class"], state=a["state"], mailbox=a["mailbox"],
        restarts=a["restarts"], last_message=a.get("last_message") or "-",
    )


def tree_rows(actors: list[Mapping[str, Any]], *, vaults_open: bool = False, text: str = "") -> tuple[ActorRow, ...]:
    """The tree in start order, indented by parent.

    The children of the ``vaults`` supervisor are one row of counts by state unless
    ``vaults_open``. With a filter ``text`` (name, class or state, any case), only the matching
    actors are listed, flat, vaults included one by one.
    """
    if text:
        return tuple(_row(a, 0) for a in actors if _matches(a, text))
    urns = {a["urn"] for a in actors}
    by_parent: dict[str | None, list[Mapping[str, Any]]] = {}
    for a in actors:
        by_parent.setdefault(a["parent"] if a["parent"] in urns else None, []).append(a)
    rows: list[ActorRow] = []

    def walk(parent: str | None, depth: int) -> None:
        for a in by_parent.get(parent, []):
            rows.append(_row(a, depth))
            children = by_parent.get(a["urn"], [])
            if a["name"] == VAULTS_SUPERVISOR and a["class"] == "Supervisor" and not vaults_open and children:
                rows.append(_fold(children, depth + 1))
            else:
                walk(a["urn"], depth + 1)

    walk(None, 0)
    return tuple(rows)


def _fold(vaults: list[Mapping[str, Any]], depth: int) -> ActorRow:
    counts: dict[str, int] = {}
    for v in vaults:
        counts[v["state"]] = counts.get(v["state"], 0) + 1
    return ActorRow(
        key="vaults:fold", name=f"{len(vaults)} vaults", depth=depth, cls="Vault",
        state=", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1])),
        mailbox=sum(v["mailbox"] for v in vaults), restarts=sum(v["restarts"] for v in vaults),
        last_message="(enter opens)", fold=len(vaults),
    )


def _trades(trades: Mapping[str, Any] | None, executor: Mapping[str, Any] | None) -> TradesView | None:
    if trades is None and executor is None:
        return None
    t, e = trades or {}, executor or {}
    return TradesView(
        rate_per_s=t.get("rate_per_s"), in_flight=e.get("in_flight"),
        awaiting_confirmation=e.get("awaiting_confirmation"), p50_s=t.get("confirmed_p50_s"),
        p99_s=t.get("confirmed_p99_s"), outcomes=dict(t.get("outcomes") or {}), window_s=t.get("window_s"),
        total=t.get("total"),
    )


def _breakers(rows: list[Mapping[str, Any]]) -> tuple[BreakerRow, ...]:
    return tuple(
        BreakerRow(
            name=r["breaker"], state=r["state"], failures=r["failures_in_window"], max_failures=r["max_failures"],
            window_s=r["window_s"], consecutive=r["consecutive"], max_consecutive=r["max_consecutive"],
            open_for_s=r.get("open_for_s"),
        )
        for r in rows
    )


def _strategy(st: Mapping[str, Any], now: float) -> StrategyView:
    ok = st.get("last_ok_at")
    return StrategyView(
        fresh=bool(st["fresh"]), round=st.get("round"), age_s=None if ok is None else max(0.0, now - ok),
        last_error=st.get("last_error"),
    )


def _quotas(rows: Mapping[str, Mapping[str, Any]]) -> tuple[QuotaRow, ...]:
    return tuple(
        QuotaRow(
            endpoint=name, used_ratio=r["used_ratio"], used=r["used_in_window"], requests=r["requests"],
            window_s=r["window_s"], waiting=r["waiting"], throttled=r["throttled"],
            shared_with=None if r["bucket"] == name else r["bucket"],
        )
        for name, r in rows.items()
    )


def _nodes(cluster: Mapping[str, Any]) -> tuple[NodeRow, ...]:
    return tuple(
        NodeRow(
            node_id=n["node_id"], this_node=bool(n.get("this_node")), alive=str(n.get("alive")),
            heartbeat_age_s=n.get("heartbeat_age_s"), owned_vaults=n.get("owned_vaults") or 0,
            kill_switch=str(n.get("kill_switch")),
        )
        for n in cluster.get("nodes") or ()
    )


def build_view(
    replies: Mapping[str, Any],
    errors: Mapping[str, str],
    *,
    now: float,
    connection: Connection = Connection.CONNECTED,
    vaults_open: bool = False,
    text: str = "",
) -> ViewModel:
    """The screen from one round of replies (by command); a command in ``errors`` has no reply.

    ``now`` is wall-clock seconds (the engine's ``*_at`` times are). A reply of a shape this
    view does not know is reported under ``errors`` instead of breaking the screen.
    """
    errs = dict(errors)

    def panel(name: str, make: Any, *args: Any) -> Any:
        if name not in replies:
            return None
        try:
            return make(replies[name], *args)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            errs[name] = f"unexpected reply: {type(exc).__name__}: {exc}"
            return None

    status = replies.get("status") or {}
    trades = None
    if "trades" in replies or "executor" in replies:
        trades = _trades(replies.get("trades"), replies.get("executor"))
    return ViewModel(
        connection=connection,
        halt=panel("status", _halt, now),
        tree=panel("tree", lambda a: tree_rows(a, vaults_open=vaults_open, text=text)) or (),
        trades=trades,
        breakers=panel("breakers", _breakers) or (),
        strategy=panel("strategy", _strategy, now),
        quotas=panel("quotas", _quotas) or (),
        nodes=panel("cluster", _nodes) or (),
        actors=status.get("actors"),
        uptime_s=status.get("uptime_s"),
        pid=status.get("pid"),
        errors=errs,
    )
