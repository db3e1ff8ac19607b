"""The live view's model: replies in, what each panel shows out (no terminal, no engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.top.fakes import NOW, TREE, FakeEngine, ks
from xorj_actors.ops.ctl import EXIT_FAILED, CtlError
from xorj_actors.top import (
    PANELS,
    Connection,
    Poller,
    bar,
    build_view,
    render_halt,
    render_header,
    render_trades,
    render_trades_reply,
)
from xorj_actors.top._render import render_breakers, render_strategy, tree_cells


def test_the_vaults_are_folded_into_counts_by_state_and_open_on_demand() -> None:
    folded = build_view({"tree": TREE}, {}, now=NOW).tree
    names = [r.name for r in folded]
    assert names == ["root", "kill_switch", "vaults", "3 vaults", "ops", "debug_socket"]
    fold = folded[3]
    assert (fold.fold, fold.state, fold.mailbox, fold.restarts, fold.depth) == (3, "2 idle, 1 running", 2, 1, 2)
    assert tree_cells(fold)[0] == "    + 3 vaults"

    opened = build_view({"tree": TREE}, {}, now=NOW, vaults_open=True).tree
    assert [r.name for r in opened][3:6] == ["vault-0000", "vault-0001", "vault-0002"]
    assert [r.depth for r in opened][:4] == [0, 1, 1, 2]


def test_a_filter_lists_the_matching_actors_flat_vaults_included() -> None:
    rows = build_view({"tree": TREE}, {}, now=NOW, text="RUNNING").tree
    assert [(r.name, r.depth) for r in rows] == [("vault-0001", 0), ("debug_socket", 0)]
    assert [r.name for r in build_view({"tree": TREE}, {}, now=NOW, text="socket").tree] == ["debug_socket"]


def test_a_halt_under_way_shows_acked_of_live_actors_the_missing_by_name_and_its_age() -> None:
    status = ks("TRIGGERED", epoch=3, mode="emergency", reason="drill", triggered_at=NOW - 2.5,
                acked=["a", "b", "c"], missing=["vault-0001"])
    h = build_view({"status": status}, {}, now=NOW).halt
    assert h is not None
    assert (h.halted, h.acked, h.live, h.missing, h.since_trigger_s) == (True, 3, 4, ("vault-0001",), 2.5)
    assert h.progress == 0.75
    text = render_halt(h).plain
    assert f"{bar(0.75)} 3/4" in text and "acking" in text
    assert "MISSING    vault-0001" in text
    assert "2.5 s ago: drill" in text


def test_a_complete_halt_is_a_full_bar_with_its_latency() -> None:
    status = ks("TRIGGERED", epoch=1, mode="graceful", triggered_at=NOW - 1, acked=["a", "b"], complete=True,
                halt_latency_s=0.012)
    text = render_halt(build_view({"status": status}, {}, now=NOW).halt).plain
    assert f"{bar(1.0)} 2/2" in text and "complete in 12 ms" in text
    assert "TRIGGERED" in text and "MISSING" not in text


def test_a_long_reason_is_cut_so_that_the_bar_stays_on_screen() -> None:
    status = ks("TRIGGERED", epoch=1, triggered_at=NOW, reason="x" * 500, acked=["a"], complete=True)
    line = render_halt(build_view({"status": status}, {}, now=NOW).halt).plain.splitlines()[1]
    assert line.endswith("x...") and len(line) < 120


def test_an_armed_switch_shows_no_bar() -> None:
    text = render_halt(build_view({"status": ks()}, {}, now=NOW).halt).plain
    assert "ARMED" in text and "[" not in text


def test_trades_join_the_window_and_the_executor() -> None:
    replies = {
        "trades": {"window_s": 60.0, "covered_s": 60.0, "outcomes": {"confirmed": 30, "failed": 2}, "rate_per_s": 0.533,
                   "confirmed_p50_s": 0.8, "confirmed_p99_s": 2.25, "total": 400},
        "executor": {"in_flight": 3, "awaiting_confirmation": 1},
    }
    text = render_trades(build_view(replies, {}, now=NOW).trades).plain
    assert "0.53/s  in flight 3  awaiting 1" in text
    assert "p50 800 ms  p99 2.2 s  intent->confirmed" in text
    assert "last 60 s: confirmed 30  failed 2" in text and "since start: 400" in text


def test_ctl_trades_renders_the_window_alone() -> None:
    text = render_trades_reply({"window_s": 60.0, "outcomes": {}, "rate_per_s": 0.0, "confirmed_p50_s": None,
                                "confirmed_p99_s": None, "total": 0})
    assert text.splitlines() == ["TRADES  0.00/s", "p50 -  p99 -  intent->confirmed", "last 60 s: none", "since start: 0"]


def test_breakers_strategy_and_unexpected_replies() -> None:
    breakers = [{"breaker": "trade_failure_rate", "state": "OPEN", "failures_in_window": 5, "max_failures": 5,
                 "window_s": 600.0, "consecutive": 3, "max_consecutive": 3, "open_for_s": 4.0}]
    strategy = {"fresh": False, "round": 7, "last_ok_at": NOW - 200, "last_error": "HTTP 503"}
    vm = build_view({"breakers": breakers, "strategy": strategy, "quotas": {"x": {}}}, {"tree": "timeout: x"}, now=NOW)
    assert "trade_failure_rate    OPEN      5/5/600s 3/3  for 4.0 s" in render_breakers(vm.breakers).plain
    assert "STALE" in render_strategy(vm.strategy).plain and "3 min ago" in render_strategy(vm.strategy).plain
    assert vm.quotas == () and vm.errors["quotas"].startswith("unexpected reply: KeyError")
    assert vm.errors["tree"] == "timeout: x"


def test_one_request_per_panel_and_cluster_only_on_a_cluster_node() -> None:
    engine = FakeEngine({"status": ks(), "tree": TREE, "executor": CtlError("unavailable: no executor", EXIT_FAILED)})
    poller = Poller(Path("/x.sock"), timeout=5.0, send=engine, clock=lambda: NOW)
    r = poller.poll()
    assert engine.asked == [p for p in PANELS if p != "cluster"]
    assert r.connection is Connection.CONNECTED and r.errors == {"executor": "unavailable: no executor"}

    engine.asked.clear()
    engine.replies["status"] = {**ks(), "cluster": {"node_id": "a"}}
    engine.replies["cluster"] = {"nodes": [{"node_id": "a", "this_node": True, "alive": "alive", "heartbeat_age_s": 0.1,
                                             "owned_vaults": 3, "kill_switch": "ARMED"}]}
    vm = (poller.poll(), poller.view())[1]
    assert engine.asked == list(PANELS)
    assert [(n.node_id, n.owned_vaults) for n in vm.nodes] == [("a", 3)]


def test_an_unreachable_engine_is_disconnected_keeps_the_last_screen_and_reconnects() -> None:
    clock = [NOW]
    engine = FakeEngine({"status": ks(), "tree": TREE})
    poller = Poller(Path("/x.sock"), timeout=5.0, send=engine, clock=lambda: clock[0])
    poller.poll()
    engine.down, clock[0] = True, NOW + 1
    engine.asked.clear()
    poller.poll()
    clock[0] = NOW + 4
    poller.poll()
    assert engine.asked == ["status", "status"]  # no request per panel while the engine is gone
    vm = poller.view()
    assert vm.connection is Connection.DISCONNECTED
    assert [r.name for r in vm.tree][:2] == ["root", "kill_switch"]  # the last good screen stays
    header = render_header(vm, lost_for_s=poller.last.at - poller.lost_at).plain
    assert "DISCONNECTED for 3.0 s: cannot reach the engine" in header

    engine.down = False
    poller.poll()
    assert poller.view().connection is Connection.CONNECTED and poller.lost_at is None
    assert "connected  pid 42" in render_header(poller.view()).plain


def test_a_broken_connection_is_disconnected_and_an_unreadable_reply_is_that_panel_s_error() -> None:
    engine = FakeEngine({"status": ks(), "tree": ValueError("Expecting value"), "trades": BrokenPipeError(32, "Broken pipe")})
    poller = Poller(Path("/x.sock"), timeout=5.0, send=engine, clock=lambda: NOW)
    assert poller.poll().connection is Connection.DISCONNECTED
    assert "broke" in poller.view().errors["engine"]

    engine.replies["trades"] = {}
    r = poller.poll()
    assert r.connection is Connection.CONNECTED and r.errors["tree"] == "unreadable reply: Expecting value"


@pytest.mark.parametrize(("fraction", "expected"), [(0.0, "[----]"), (0.5, "[##--]"), (1.0, "[####]"), (7.0, "[####]")])
def test_bar(fraction: float, expected: str) -> None:
    assert bar(fraction, 4) == expected


def test_the_command_refuses_what_it_cannot_use_before_starting_the_screen(capsys: pytest.CaptureFixture[str]) -> None:
    from xorj_actors.cli import main

    assert main(["top", "--socket", "/nowhere.sock", "--refresh", "0"]) == 2
    assert "--refresh must be between 0.1 and 60 seconds" in capsys.readouterr().err
    assert main(["top", "--socket", "/nowhere.sock"]) == 2  # pytest's stdout is no terminal
    assert "needs a terminal" in capsys.readouterr().err
