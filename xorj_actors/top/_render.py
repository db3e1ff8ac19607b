"""Each panel of the live view as rich text, from the view model (no terminal needed).

Alarming states are in capitals and red (a halt, an open breaker, a stale feed, a lost engine),
so that they stand out on a monochrome terminal too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from rich.text import Text

from xorj_actors.top._model import (
    ActorRow,
    BreakerRow,
    Connection,
    HaltView,
    NodeRow,
    QuotaRow,
    StrategyView,
    TradesView,
    ViewModel,
)

__all__ = [
    "TREE_COLUMNS",
    "bar",
    "render_breakers",
    "render_halt",
    "render_header",
    "render_nodes",
    "render_quotas",
    "render_strategy",
    "render_trades",
    "render_trades_reply",
    "tree_cells",
]

TREE_COLUMNS: Final = ("ACTOR", "STATE", "MAILBOX", "RESTARTS", "LAST MESSAGE", "CLASS")
_BAR_WIDTH: Final = 20
#: Missing actors named on screen; the rest are counted.
_MISSING_SHOWN: Final = 12
_QUOTA_WARN: Final = 0.8
#: A trigger's reason is cut here (ctl status has it whole): the bar must stay on screen.
_REASON_SHOWN: Final = 90


def bar(fraction: float, width: int = _BAR_WIDTH) -> str:
    """A text progress bar, ``[#####-----]``, for ``fraction`` in 0..1."""
    done = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * done + "-" * (width - done) + "]"


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min"


def render_header(vm: ViewModel, *, lost_for_s: float | None = None, text: str = "") -> Text:
    out = Text("xorj-actors top  ", style="bold")
    if vm.connection is Connection.DISCONNECTED:
        why = vm.errors.get("engine", "")
        out.append(f"DISCONNECTED for {_s(lost_for_s)}: {why}; reconnecting", style="bold white on red")
        return out
    if vm.connection is Connection.CONNECTING:
        return out.append("connecting ...")
    out.append("connected", style="green")
    out.append(f"  pid {vm.pid}  up {_s(vm.uptime_s)}  {vm.actors} actors")
    if text:
        out.append(f"  filter: {text!r}", style="yellow")
    return out


def render_halt(h: HaltView | None) -> Text:
    if h is None:
        return Text("KILL SWITCH  (no answer)", style="yellow")
    style = "bold white on red" if h.halted else "bold green"
    out = Text("KILL SWITCH  ")
    out.append(f" {h.state} ", style=style)
    out.append(f"  epoch {h.epoch}" + (f"  {h.mode}" if h.mode else "") + (f"  factor {h.factor:g}" if h.factor != 1 else ""))
    if h.since_trigger_s is None:
        return out
    reason = h.reason or "-"
    if len(reason) > _REASON_SHOWN:
        reason = reason[: _REASON_SHOWN - 3] + "..."
    out.append(f"\nlast trigger {_s(h.since_trigger_s)} ago: {reason}")
    if not h.halted:
        return out
    done = "complete" + (f" in {_s(h.latency_s)}" if h.latency_s is not None else "") if h.complete else "acking"
    out.append(f"\nhalt acks  {bar(h.progress)} {h.acked}/{h.live}", style="green" if h.complete else "red")
    out.append(f"\n           {done}", style="green" if h.complete else "bold red")
    if h.missing:
        names = ", ".join(h.missing[:_MISSING_SHOWN])
        more = f" and {len(h.missing) - _MISSING_SHOWN} more" if len(h.missing) > _MISSING_SHOWN else ""
        out.append(f"\nMISSING    {names}{more}", style="bold red")
    return out


def render_trades(t: TradesView | None) -> Text:
    if t is None:
        return Text("TRADES  (no answer)", style="yellow")
    rate = "-" if t.rate_per_s is None else f"{t.rate_per_s:.2f}/s"
    inflight = "" if t.in_flight is None else f"  in flight {t.in_flight}"
    awaiting = "" if t.awaiting_confirmation is None else f"  awaiting {t.awaiting_confirmation}"
    window = "-" if t.window_s is None else f"{t.window_s:g} s"
    out = Text(f"TRADES  {rate}{inflight}{awaiting}\n")
    out.append(f"p50 {_s(t.p50_s)}  p99 {_s(t.p99_s)}  intent->confirmed\n")
    outcomes = "  ".join(f"{k} {v}" for k, v in sorted(t.outcomes.items())) or "none"
    out.append(f"last {window}: {outcomes}")
    if t.total is not None:
        out.append(f"\nsince start: {t.total}")
    return out


def render_trades_reply(result: Mapping[str, Any]) -> str:
    """``ctl trades``: the ``trades`` reply alone, as plain text."""
    from xorj_actors.top._model import build_view

    return render_trades(build_view({"trades": result}, {}, now=0.0).trades).plain


def render_breakers(rows: tuple[BreakerRow, ...]) -> Text:
    out = Text("BREAKERS  failures/limit/window, in a row")
    for b in rows:
        line = (f"\n{b.name:<21} {b.state:<9} {b.failures}/{b.max_failures}/{b.window_s:g}s"
                f" {b.consecutive}/{b.max_consecutive or '-'}")
        if b.open_for_s is not None:
            line += f"  for {_s(b.open_for_s)}"
        out.append(line, style=None if b.state == "CLOSED" else "bold red")
    return out


def render_strategy(s: StrategyView | None) -> Text:
    if s is None:
        return Text("STRATEGY FEED  (no answer)", style="yellow")
    out = Text("STRATEGY FEED  ")
    out.append("fresh" if s.fresh else "STALE: no new trades", style="green" if s.fresh else "bold white on red")
    out.append(f"  round {s.round if s.round is not None else '-'}\nlast good answer {_s(s.age_s)} ago")
    if s.last_error:
        out.append(f"\nlast error: {s.last_error}", style="yellow")
    return out


def render_quotas(rows: tuple[QuotaRow, ...]) -> Text:
    out = Text("QUOTAS")
    for q in rows:
        if q.shared_with is not None:
            continue  # counted in the bucket it shares
        line = f"\n{q.endpoint:<16} {bar(q.used_ratio, 10)} {q.used_ratio * 100:3.0f}%  {q.used}/{q.requests} per {q.window_s:g}s"
        if q.waiting or q.throttled:
            line += f"  waiting {q.waiting}  429s {q.throttled}"
        out.append(line, style="bold red" if q.used_ratio >= _QUOTA_WARN else None)
    return out


def render_nodes(rows: tuple[NodeRow, ...]) -> Text:
    if not rows:
        return Text("")
    out = Text("CLUSTER NODES  heartbeat, vaults, kill switch")
    for n in rows:
        me = " (this node)" if n.this_node else ""
        line = f"\n{n.node_id:<8} {n.alive:<6} beat {_s(n.heartbeat_age_s)} ago  vaults {n.owned_vaults}  {n.kill_switch}{me}"
        out.append(line, style=None if n.alive == "alive" else "bold red")
    return out


def tree_cells(row: ActorRow) -> tuple[str, ...]:
    """One line of the tree table, in :data:`TREE_COLUMNS` order."""
    marker = "+ " if row.fold is not None else ""
    return (
        "  " * row.depth + marker + row.name, row.state, str(row.mailbox), str(row.restarts), row.last_message,
        row.cls,
    )
