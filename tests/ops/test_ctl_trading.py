"""The operators' trading commands (debug socket + ctl) against real engines.

Two engines: one without the localnet and without execution (the executor and confirmation
commands must say "unavailable"), and one with the localnet and execution, where vaults trade.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from supervisors import Actor, ChildSpec, Ref, StartChild
from tests.helpers import wait_until
from xorj_actors.audit import AuditStoreError, open_store, select_entries
from xorj_actors.engine import Engine
from xorj_actors.ops import Commands, RequestError
from xorj_actors.ops.ctl import CtlError, add_arguments, main, request
from xorj_actors.vaults import GetVaultStatus, VaultPhase, VaultStatus


def ctl(engine: Engine, cmd: str, **args: Any) -> Any:
    return request(engine.socket_path, cmd, args, timeout=10)


def refused(engine: Engine, cmd: str, **args: Any) -> str:
    """The error code and message of a request that must fail."""
    with pytest.raises(CtlError) as info:
        ctl(engine, cmd, **args)
    return str(info.value)


def supervisor_ref(engine: Engine, name: str) -> Ref:
    """The live supervisor ``name`` in the engine's tree."""
    ref = engine.runtime.supervisor(name)
    assert ref is not None, f"the {name} supervisor is not running"
    return ref


def tree_names(engine: Engine) -> dict[str, str]:
    """Actor name -> its parent's name."""
    tree = ctl(engine, "tree")
    by_urn = {a["urn"]: a["name"] for a in tree}
    return {a["name"]: by_urn.get(a["parent"], "-") for a in tree}


def audit_entries(engine: Engine, event_type: str, actor: str, count: int) -> list[dict[str, Any]]:
    """The details of ``actor``'s ``event_type`` entries, once at least ``count`` are committed."""

    def entries() -> list[dict[str, Any]]:
        try:
            store = open_store(engine.config.audit, engine.data_dir, create=False)
        except AuditStoreError:
            return []
        try:
            return [json.loads(e.details) for e in select_entries(store)
                    if e.event_type == event_type and e.actor == actor]
        finally:
            store.close()

    wait_until(lambda: len(entries()) >= count, 10, f"{count} {event_type} entries from {actor}")
    return entries()


def run_main(capsys: pytest.CaptureFixture[str], engine: Engine, *argv: str) -> tuple[int, str, str]:
    """``xorj-actors ctl --socket ... ARGV`` in this process: (exit code, stdout, stderr)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    code = main(parser.parse_args(["--socket", str(engine.socket_path), *argv]))
    out = capsys.readouterr()
    return code, out.out, out.err


def ctl_process(engine: Engine, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xorj_actors.cli", "ctl", "--socket", str(engine.socket_path), *argv],
        capture_output=True, text=True, timeout=30,
    )


class StuckVault(Actor):
    """Stands in for a vault stuck in a handler: its status ask gets no answer until released."""

    dedicated_thread: ClassVar[bool] = True  # it blocks; the shared pool must not

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetVaultStatus):
            self.release.wait(10)
            return VaultStatus(vault_id="vault-0050", profile="conservative", phase=VaultPhase.IDLE, rounds=0, rounds_skipped=0,
                               trades_confirmed=0, trades_other=0, last_skip="", value_usd=0.0, pending=())
        return None


@pytest.fixture
def quiet_engine(engine_factory: Callable[..., Engine]) -> Engine:
    """No localnet, no execution, nothing listening for the strategy feed: vaults hold."""
    return engine_factory(vaults=3)


# -- without execution ---------------------------------------------------------------------------


def test_status_commands_without_execution(quiet_engine: Engine) -> None:
    e = quiet_engine
    assert refused(e, "executor").startswith("unavailable: the executor is not running")
    assert refused(e, "confirmation").startswith("unavailable: the confirmation actor is not running")

    st = ctl(e, "strategy")
    assert st["url"].startswith("http://127.0.0.1:9") and st["fresh"] is False and st["round"] is None
    wait_until(lambda: ctl(e, "strategy")["last_error"] is not None, 10, "the feed's first poll failed")
    polls = ctl(e, "strategy")["polls"]
    assert ctl(e, "strategy-refresh", reason="drill") == {"requested": True, "reason": "drill"}
    wait_until(lambda: ctl(e, "strategy")["polls"] > polls, 10, "a poll after the refresh")

    risk = ctl(e, "risk")
    assert risk["drawdown"]["vaults"] == 0 and risk["drawdown"]["drawdown_latched"] is False
    assert "kill_switch" in risk["heartbeat"]["watched"]
    assert set(risk) == {"drawdown", "heartbeat", "clock_skew", "errors", "correlation"}
    corr = risk["correlation"]  # the defaults; no price watch without execution: no estimate
    assert corr["enabled"] is True and corr["as_of"] is None and corr["clusters"] == [] and corr["global_max_usd"] is None

    vaults = ctl(e, "vaults")
    assert [v["vault_id"] for v in vaults["vaults"]] == ["vault-0000", "vault-0001", "vault-0002"]
    assert vaults["count"] == vaults["answered"] == 3 and vaults["not_answering"] == []
    assert all(v["phase"] == "idle" and v["pending"] == [] for v in vaults["vaults"])
    one = ctl(e, "vaults", vault="vault-0001")
    assert one["count"] == 1 and one["vaults"][0]["vault_id"] == "vault-0001" and one["vaults"][0]["answered"]

    result = ctl(e, "round", vault="vault-0000")
    assert result["ran"] is False and "strategy feed stale" in result["reason"]
    assert ctl(e, "vaults", vault="vault-0000")["vaults"][0]["rounds_skipped"] >= 1


def test_bad_input_is_refused_and_changes_nothing(quiet_engine: Engine) -> None:
    e = quiet_engine
    before = tree_names(e)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("executor", {"x": 1}, "bad_request"),
        ("vaults", {"vault": "vault-9999"}, "not_found"),
        ("vaults", {"vault": 5}, "bad_request"),
        ("vaults", {"vault": "kill_switch"}, "bad_request"),
        ("vaults", {"vault": "vault-0001\n"}, "bad_request"),
        ("vaults", {"nope": 1}, "bad_request"),
        ("round", {}, "bad_request"),
        ("round", {"vault": "vault-0042"}, "not_found"),
        ("round", {"vault": ["vault-0000"]}, "bad_request"),
        ("vault-add", {"count": -1}, "bad_request"),
        ("vault-add", {"count": 0}, "bad_request"),
        ("vault-add", {"count": "2"}, "bad_request"),
        ("vault-add", {"count": True}, "bad_request"),
        ("vault-add", {"count": 1.5}, "bad_request"),
        ("vault-add", {"count": 1001}, "bad_request"),
        ("vault-add", {"count": 1, "index": -3}, "bad_request"),
        ("vault-add", {"count": 2, "index": 2}, "bad_request"),  # vault-0002 exists
        ("vault-add", {"count": 1, "index": 999_999 + 1}, "bad_request"),
        ("vault-add", {"count": 1, "operator": ""}, "bad_request"),
        ("vault-remove", {"vault": "vault-0042"}, "not_found"),
        ("vault-remove", {"vault": 1}, "bad_request"),
        ("vault-remove", {"vault": "risk_drawdown"}, "bad_request"),
        ("vault-remove", {"vault": "vault-0001", "force": "yes"}, "bad_request"),
        ("vault-remove", {"vault": "vault-0001", "reason": "x" * 501}, "bad_request"),
        ("risk-reset", {"operator": "ops"}, "bad_request"),
        ("risk-reset", {"operator": "", "reason": "drill"}, "bad_request"),
        ("risk-reset", {"operator": 7, "reason": "drill"}, "bad_request"),
        ("risk-reset", {"operator": "ops", "reason": "x" * 501}, "bad_request"),
        ("strategy-refresh", {"reason": 3}, "bad_request"),
    ]
    for cmd, args, code in cases:
        message = refused(e, cmd, **args)
        assert message.startswith(f"{code}: "), (cmd, args, message)
    assert "vault-0002" in refused(e, "vault-add", count=2, index=1)
    assert tree_names(e) == before, "a refused request changed the tree"

    # The audit trail has a single writer: the entries of these valid requests come after any
    # a refused one would have made, so "exactly one" proves the refusals wrote nothing.
    assert ctl(e, "vault-add", count=1, operator="ops") == {"added": ["vault-0003"], "failed": {}, "not_tried": []}
    [added] = audit_entries(e, "CONFIG_CHANGE", "debug_socket", 1)
    assert added["what"] == "vaults added" and added["vaults"] == ["vault-0003"] and added["operator"] == "ops"
    reset = ctl(e, "risk-reset", operator="ops", reason="new baseline after the drill")
    assert reset["reset"] is True and reset["status"]["drawdown_latched"] is False
    [entry] = audit_entries(e, "RECOVERY", "risk_drawdown", 1)
    assert entry["operator"] == "ops" and entry["reason"] == "new baseline after the drill"


def test_vaults_are_added_and_removed_at_run_time(quiet_engine: Engine) -> None:
    e = quiet_engine
    assert ctl(e, "vault-add", count=2)["added"] == ["vault-0003", "vault-0004"]
    assert ctl(e, "vault-add", count=1, index=10)["added"] == ["vault-0010"]
    parents = tree_names(e)
    assert all(parents[v] == "vaults" for v in ("vault-0003", "vault-0004", "vault-0010"))
    vaults = ctl(e, "vaults")
    assert vaults["count"] == vaults["answered"] == 6 and vaults["vaults"][-1]["vault_id"] == "vault-0010"

    removed = ctl(e, "vault-remove", vault="vault-0004", operator="ops", reason="closed by its owner")
    assert removed["removed"] is True and removed["stopped"] is True and removed["forced"] is False
    assert removed["problems"] == [] and removed["unsettled_after"] == []
    assert "vault-0004" not in tree_names(e)
    assert refused(e, "vaults", vault="vault-0004").startswith("not_found")
    assert ctl(e, "vault-add", count=1, index=4)["added"] == ["vault-0004"]  # its index is free again
    entries = audit_entries(e, "CONFIG_CHANGE", "debug_socket", 4)
    assert [x["what"] for x in entries] == ["vaults added", "vaults added", "vault removed", "vaults added"]
    assert entries[2]["vault"] == "vault-0004" and entries[2]["reason"] == "closed by its owner"


def test_a_vault_that_does_not_answer_is_listed_and_not_removed_blindly(quiet_engine: Engine) -> None:
    e = quiet_engine
    release = threading.Event()
    supervisor = supervisor_ref(e, "vaults")
    supervisor.ask(StartChild(ChildSpec("vault-0050", lambda: StuckVault.start(release), shutdown_timeout=5)), timeout=5)
    try:
        vaults = ctl(e, "vaults")
        assert vaults["count"] == 4 and vaults["answered"] == 3 and vaults["not_answering"] == ["vault-0050"]
        stuck = vaults["vaults"][-1]
        assert stuck["answered"] is False and stuck["error"].startswith("no answer within")
        outcome = ctl(e, "vault-remove", vault="vault-0050")
        assert outcome["removed"] is False and "cannot tell whether trades are pending" in outcome["reason"]
        assert "vault-0050" in tree_names(e)
        forced = ctl(e, "vault-remove", vault="vault-0050", force=True)
        assert forced["removed"] is True and forced["forced"] is True and forced["problems"]
        assert forced["stopped"] is False and any("did not finish stopping" in n for n in forced["notes"])
    finally:
        release.set()
    wait_until(lambda: "vault-0050" not in tree_names(e), 10, "vault-0050 stopped")
    assert ctl(e, "vaults")["count"] == 3


def test_without_the_hook_vault_add_is_unavailable(quiet_engine: Engine) -> None:
    bare = Commands(quiet_engine.runtime, quiet_engine.endpoints, quiet_engine.data_dir, views={})
    with pytest.raises(RequestError) as info:
        bare.table()["vault-add"]({"count": 1})
    assert info.value.code == "unavailable"
    assert "vault-0003" not in tree_names(quiet_engine)


def test_ctl_renders_tables_and_exit_codes(quiet_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    e = quiet_engine
    table = ctl_process(e, "vaults")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["VAULT", "PROFILE", "PHASE"]
    assert [line.split()[0] for line in lines[1:4]] == ["vault-0000", "vault-0001", "vault-0002"]
    assert lines[-1].startswith("3 vault(s), 3 answering, 0 trade(s) pending")
    down = ctl_process(e, "executor")
    assert down.returncode == 1 and "unavailable: the executor is not running" in down.stderr

    code, out, err = run_main(capsys, e, "vault-add", "--count", "-2")
    assert code == 1 and out == "" and "bad_request: count must be between 1 and 1000" in err
    code, out, _ = run_main(capsys, e, "round", "--vault", "vault-0001")
    assert code == 1 and out.startswith("vault-0001: round NOT run: strategy feed stale")
    code, out, _ = run_main(capsys, e, "vaults", "--vault", "vault-0002", "--json")
    assert code == 0 and json.loads(out)["vaults"][0]["vault_id"] == "vault-0002"
    code, out, _ = run_main(capsys, e, "strategy")
    assert code == 0 and "STALE" in out and "http://127.0.0.1:9" in out
    code, out, _ = run_main(capsys, e, "risk")
    assert code == 0 and out.startswith("drawdown") and "heartbeat" in out and "clock skew" in out
    assert "correlation   0 cluster(s) at >= 0.8 from 0 ticks" in out
    code, out, _ = run_main(capsys, e, "risk-reset", "--operator", "ops", "--reason", "drill")
    assert code == 0 and out.startswith("risk baseline reset by ops")
    code, out, _ = run_main(capsys, e, "vault-add", "--count", "1")
    assert code == 0 and out.strip() == "added 1: vault-0003"
    code, out, _ = run_main(capsys, e, "vault-remove", "--vault", "vault-0003")
    assert code == 0 and out.strip() == "vault-0003 removed"


# -- with the localnet and execution: vaults trade ---------------------------------------------


def test_trading_engine_status_rounds_and_removal_with_pending_trades(
    trading_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    e = trading_engine
    localnet = e.localnet
    wait_until(lambda: ctl(e, "executor")["reconciled"], 10, "executor reconciled")
    wait_until(lambda: ctl(e, "strategy")["fresh"], 10, "a fresh strategy")
    def slots_flow() -> bool:  # "connected" is the subscription confirmed; the first slot comes after it
        link = ctl(e, "confirmation")
        return bool(link["connected"] and link["slot"] > 0)

    wait_until(slots_flow, 10, "confirmation connected and a slot seen")
    health = ctl(e, "confirmation")
    assert health["slot"] > 0 and health["last_error"] is None
    code, out, _ = run_main(capsys, e, "confirmation")
    assert code == 0 and out.startswith("connection    connected")

    # A round while the slot clock stands still: its trades land but never confirm, so they stay pending.
    localnet.set_faults(clock_stalled=True)
    try:
        assert ctl(e, "round", vault="vault-0000") == {"vault_id": "vault-0000", "round": 0, "ran": True, "reason": "started"}
        assert ctl(e, "round", vault="vault-0000")["reason"] == "round in flight"
        wait_until(lambda: ctl(e, "vaults", vault="vault-0000")["pending_trades"] > 0, 10, "trades pending")
        wait_until(lambda: ctl(e, "executor")["awaiting_confirmation"] > 0, 10, "trades awaiting confirmation")
        assert ctl(e, "executor")["accepted"] >= 1
        pending = ctl(e, "vaults", vault="vault-0000")["vaults"][0]["pending"]
        outcome = ctl(e, "vault-remove", vault="vault-0000")
        assert outcome["removed"] is False and f"{len(pending)} trade(s) pending" in outcome["reason"]
        code, out, _ = run_main(capsys, e, "vault-remove", "--vault", "vault-0000")
        assert code == 1 and "NOT removed" in out and "--force" in out
        assert "vault-0000" in tree_names(e)
    finally:
        localnet.reset_faults()

    def settled() -> bool:
        v = ctl(e, "vaults", vault="vault-0000")["vaults"][0]
        return v["phase"] == "idle" and not v["pending"]

    wait_until(settled, 15, "the round's trades settled")
    assert ctl(e, "vaults", vault="vault-0000")["vaults"][0]["trades_confirmed"] >= len(pending)
    assert ctl(e, "executor")["outcomes"].get("confirmed", 0) >= len(pending)
    # The last minute's window (``trades``, what ``top`` shows) saw the same outcomes as the executor.
    trades, outcomes = ctl(e, "trades"), ctl(e, "executor")["outcomes"]
    assert trades["total"] == sum(outcomes.values()) and trades["confirmed_p50_s"] is not None
    assert trades["confirmed_p50_s"] <= trades["confirmed_p99_s"]
    code, out, _ = run_main(capsys, e, "trades")
    assert code == 0 and "intent->confirmed" in out and f"since start: {trades['total']}" in out
    assert ctl(e, "risk")["drawdown"]["vaults"] == 1  # vault-0000 was valued in its round
    removed = ctl(e, "vault-remove", vault="vault-0000", operator="ops", reason="migrated")
    assert removed["removed"] is True and removed["forced"] is False and removed["notes"] == []
    # The drawdown monitor heard it left on purpose: its value is no longer in the portfolio.
    wait_until(lambda: ctl(e, "risk")["drawdown"]["vaults"] == 0, 10, "the drawdown monitor forgot vault-0000")

    # A vault added at run time (funded at genesis: the localnet made 4) trades like the others.
    assert ctl(e, "vault-add", count=1)["added"] == ["vault-0002"]
    assert ctl(e, "round", vault="vault-0002")["ran"] is True
    wait_until(lambda: ctl(e, "vaults", vault="vault-0002")["vaults"][0]["trades_confirmed"] > 0, 15, "vault-0002 traded")

    # --force removes a vault with trades pending; the executor still settles them.
    confirmed = ctl(e, "executor")["outcomes"].get("confirmed", 0)
    localnet.set_faults(clock_stalled=True)
    try:
        assert ctl(e, "round", vault="vault-0001")["ran"] is True
        wait_until(lambda: ctl(e, "vaults", vault="vault-0001")["pending_trades"] > 0, 10, "trades pending")
        forced = ctl(e, "vault-remove", vault="vault-0001", force=True)
        assert forced["removed"] is True and forced["forced"] is True
        assert any("pending" in p for p in forced["problems"])
    finally:
        localnet.reset_faults()
    wait_until(lambda: ctl(e, "executor")["outcomes"].get("confirmed", 0) > confirmed, 15, "the orphaned trades settled")
    wait_until(lambda: ctl(e, "executor")["in_flight"] == 0, 15, "nothing in flight")
    assert [x["what"] for x in audit_entries(e, "CONFIG_CHANGE", "debug_socket", 3)] == [
        "vault removed", "vaults added", "vault removed"
    ]
