"""Statement reconciliation against a real localnet after a real engine traded on it.

``xorj-actors localnet`` and ``xorj-actors run`` run as separate processes (the chain outlives
the engine). The engine audits every vault's opening balances at start and trades; then
``xorj-actors reconcile`` runs as an operator runs it: on the engine's own log (clean), on copies
of the ledger where an outcome was edited or a trade left out (an insider holding the HMAC key:
every entry of the copy verifies), and after a transfer out of a vault made behind the engine's
back, signed with the vault authority's development key (its seed is public on the localnet).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from tests.conftest import free_port
from tests.ops.conftest import HTTP_KEY, HTTP_KEY_ENV
from tests.chaos.crash_helpers import ENGINE_AGAINST_LOCALNET, EngineProcess, LocalnetProcess, cli, poll, read_ledger
from xorj_actors.audit import AuditLog, load_hmac_key, open_store, select_entries
from xorj_actors.config import Config, load_config
from xorj_actors.localnet import build_genesis, dev_vault_authority
from xorj_actors.ops.ctl import request
from xorj_actors.statements import LAMPORTS, RpcReader
from xorj_actors.statements import reconcile as reconcile_vaults
from xorj_actors.statements.cli import vault_accounts
from xorj_actors.tokens import TOKEN_PROGRAM_ID, vault_token_account

pytestmark = pytest.mark.timeout(600)  # the module fixture trades on 100 vaults first

VAULTS = 100
LOCALNET = f"""
[localnet]
seed = "xorj-statements"
slot_ms = 20
confirmed_lag = 1
finalized_lag = 4
vaults = {VAULTS}
"""
_VAULTS_SECTION = "[vaults]\ncount = 2\nround_interval_s = 0.5\n"
assert _VAULTS_SECTION in ENGINE_AGAINST_LOCALNET
ENGINE = ENGINE_AGAINST_LOCALNET.replace(
    _VAULTS_SECTION, f"[vaults]\ncount = {VAULTS}\nround_interval_s = 1.0\n"
) + LOCALNET + "enabled = false\n[reconciliation]\nfirst_run_s = 0\n"
#: Trades confirmed before the engine is stopped.
TRADES = 20


@dataclass
class Traded:
    config_path: Path
    config: Config
    data: Path
    rpc: str


def reconcile(traded: Traded, data: Path, *args: str) -> tuple[int, dict[str, Any]]:
    run = subprocess.run(
        cli("reconcile", "--config", str(traded.config_path), "--data-dir", str(data), "--rpc", traded.rpc, "--json", *args),
        capture_output=True, text=True, timeout=300,
    )
    assert run.stdout, run.stderr
    return run.returncode, json.loads(run.stdout)


@pytest.fixture(scope="module")
def traded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traded]:
    tmp = tmp_path_factory.mktemp("statements")
    ln_config = tmp / "localnet.toml"
    ln_config.write_text(LOCALNET)
    localnet = LocalnetProcess(ln_config, tmp / "localnet.log")
    try:
        config_path, data = tmp / "engine.toml", tmp / "var"
        config_path.write_text(ENGINE.format(api="swap", **localnet.urls))
        engine = EngineProcess(config_path, data, tmp / "engine.log")
        try:
            config = load_config(config_path)
            poll(lambda: len(_openings(config, data)) == VAULTS, 120, "every vault's opening balances", engine=engine)
            poll(lambda: _confirmed(config, data) >= TRADES, 180, f"{TRADES} confirmed trades", engine=engine)
            assert engine.ctl("halt", "--reason", "statement test").returncode == 0
            poll(lambda: not read_ledger(config, data).open(), 90, "every trade settled", engine=engine)
            assert engine.stop() == 0, engine.log_tail()
        finally:
            engine.kill()
        yield Traded(config_path, config, data, localnet.urls["rpc"])
    finally:
        localnet.stop()


def _openings(config: Config, data: Path) -> list[str]:
    try:
        store = open_store(config.audit, data, create=False)
    except Exception:  # noqa: BLE001 - not created yet
        return []
    try:
        return [e.correlation_id for e in select_entries(store, event_types=("SYSTEM_EVENT",))
                if e.actor == "reconciliation" and json.loads(e.details).get("what") == "opening balances"]
    finally:
        store.close()


def _confirmed(config: Config, data: Path) -> int:
    try:
        trades = read_ledger(config, data).trades
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return sum(1 for t in trades.values() if t.outcome and t.outcome["status"] == "confirmed")


def _copy_ledger(traded: Traded, dest: Path, edit: Any) -> Path:
    """A copy of the engine's ledger, re-written entry by entry with the HMAC key (an insider's
    copy: it verifies); ``edit(entry, details)`` returns the details to write, or None to leave it out."""
    store = open_store(traded.config.audit, traded.data, create=False)
    log = AuditLog.open(traded.config.audit, dest, traded.config.engine.environment)
    try:
        for e in select_entries(store):
            details = edit(e, json.loads(e.details))
            if details is not None:
                log.append(e.event_type, actor=e.actor, details=details, correlation_id=e.correlation_id, severity=e.severity)
    finally:
        log.close()
        store.close()
    return dest


def _outcome_edit(tid: str, in_amount: int = 0, **fields: Any) -> Any:
    """An edit for :func:`_copy_ledger`: trade ``tid``'s outcome with ``in_amount`` added and ``fields`` set."""
    def edit(e: Any, d: dict[str, Any]) -> dict[str, Any]:
        if e.event_type == "TRADE_CONFIRMATION" and e.correlation_id == tid:
            return {**d, "in_amount": d["in_amount"] + in_amount, **fields}
        return d

    return edit


def _a_confirmed_trade(traded: Traded) -> tuple[str, dict[str, Any], dict[str, Any]]:
    trades = read_ledger(traded.config, traded.data).trades
    tid, t = next((tid, t) for tid, t in sorted(trades.items()) if t.outcome and t.outcome["status"] == "confirmed")
    assert t.intent is not None
    return tid, t.intent, t.outcome


def _violations(config: Config, data: Path) -> list[dict[str, Any]]:
    store = open_store(config.audit, data, create=False)
    try:
        return [json.loads(e.details) for e in select_entries(store, event_types=("SECURITY_VIOLATION",))
                if e.actor == "reconciliation"]
    finally:
        store.close()


def test_a_clean_run_over_100_vaults_after_real_trading(traded: Traded) -> None:
    code, report = reconcile(traded, traded.data)
    assert (code, report["result"], report["mismatches"], report["vaults"]) == (0, "clean", 0, VAULTS), report
    assert report["opened"] == [], "the engine audited every vault's opening balances at its start"
    assert report["transactions"] >= TRADES
    traded_vaults = sum(1 for s in report["statements"] if s["transactions"])
    assert traded_vaults >= 5, report["statements"][:3]
    # the figures are the chain's: every asset expected equals the actual, SOL fees included
    assert all(s["expected"] == s["actual"] and LAMPORTS in s["actual"] for s in report["statements"])
    assert _violations(traded.config, traded.data) == []


def test_an_outcome_edited_in_a_copy_of_the_ledger_is_caught(traded: Traded, tmp_path: Path) -> None:
    tid, intent, outcome = _a_confirmed_trade(traded)

    copy = _copy_ledger(traded, tmp_path / "edited", _outcome_edit(tid, in_amount=1))
    code, report = reconcile(traded, copy, "--vaults", intent["vault_id"])
    assert code == 1 and report["result"] == "mismatch"
    [m] = [m for s in report["statements"] for m in s["mismatches"]]
    assert (m["cause"], m["trade_id"], m["signature"], m["asset"]) == ("amount_differs", tid, outcome["signature"], intent["input_mint"])
    assert (m["expected"], m["actual"], m["difference"]) == (-(outcome["in_amount"] + 1), -outcome["in_amount"], 1)
    [v] = _violations(traded.config, copy)
    assert (v["cause"], v["trade_id"], v["difference"]) == ("amount_differs", tid, 1)


def test_a_landed_trade_the_ledger_calls_expired_is_caught(traded: Traded, tmp_path: Path) -> None:
    tid, intent, outcome = _a_confirmed_trade(traded)

    copy = _copy_ledger(traded, tmp_path / "expired", _outcome_edit(tid, status="expired"))
    code, report = reconcile(traded, copy, "--vaults", intent["vault_id"])
    assert code == 1 and report["result"] == "mismatch"
    [m] = [m for s in report["statements"] for m in s["mismatches"]]
    assert (m["cause"], m["trade_id"], m["signature"], m["asset"]) == ("outcome_differs", tid, outcome["signature"], intent["input_mint"])
    assert (m["expected"], m["actual"]) == (0, -outcome["in_amount"])


def test_a_mismatch_stands_when_the_audit_log_refuses_its_entry(traded: Traded, tmp_path: Path) -> None:
    tid, intent, outcome = _a_confirmed_trade(traded)

    copy = _copy_ledger(traded, tmp_path / "locked", _outcome_edit(tid, in_amount=1))
    assert traded.config.audit.backend == "sqlite"
    db = sqlite3.connect(copy / traded.config.audit.sqlite_path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")  # another writer holds the lock: every append times out; reads go on (WAL)
    try:
        run = subprocess.run(
            cli("reconcile", "--config", str(traded.config_path), "--data-dir", str(copy), "--rpc", traded.rpc,
                "--json", "--vaults", intent["vault_id"]),
            capture_output=True, text=True, timeout=300,
        )
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert report["result"] == "mismatch" and report["audit_errors"], report
    [m] = [m for s in report["statements"] for m in s["mismatches"]]
    assert (m["cause"], m["trade_id"]) == ("amount_differs", tid)
    assert "audit entry not written: SECURITY_VIOLATION" in run.stderr
    assert _violations(traded.config, copy) == []  # refused indeed: the finding lives in the report


def test_a_vault_with_a_trade_in_flight_is_deferred_not_a_mismatch(traded: Traded, tmp_path: Path) -> None:
    # the outcome not written yet: the trade landed, the ledger does not say so; the next run concludes
    tid, intent, _ = _a_confirmed_trade(traded)
    copy = _copy_ledger(traded, tmp_path / "open",
                        lambda e, d: None if e.event_type == "TRADE_CONFIRMATION" and e.correlation_id == tid else d)
    code, report = reconcile(traded, copy, "--vaults", intent["vault_id"])
    assert (code, report["result"], report["mismatches"], report["vaults"]) == (0, "clean", 0, 0), report
    assert report["deferred"] == {intent["vault_id"]: f"trade {tid}: open (an intent without an outcome)"}
    assert _violations(traded.config, copy) == []


def test_a_trade_open_longer_than_defer_max_s_makes_the_vault_unreadable_not_deferred(
    traded: Traded, tmp_path: Path
) -> None:
    # a stuck trade (the engine died mid-trade and was not restarted) must not leave runs reading clean
    tid, intent, _ = _a_confirmed_trade(traded)
    copy = _copy_ledger(traded, tmp_path / "stuck",
                        lambda e, d: None if e.event_type == "TRADE_CONFIRMATION" and e.correlation_id == tid else d)
    vault, config = intent["vault_id"], traded.config
    accounts = vault_accounts(config, lambda v: dev_vault_authority(v).pubkey(), [vault])
    key = load_hmac_key(config.audit.hmac_key_env, config.engine.environment)
    store = open_store(config.audit, copy, create=False)
    try:
        def run(hours: float) -> Any:
            return reconcile_vaults(store, key, RpcReader(traded.rpc, 30), accounts, defer_max_s=3600,
                                    now=time.time() + hours * 3600)

        assert run(0).deferred == {vault: f"trade {tid}: open (an intent without an outcome)"}
        late = run(2)
        assert (late.deferred, late.result.value, late.statements) == ({}, "incomplete", [])
        assert late.unreadable[vault].startswith(f"trade {tid}: open (an intent without an outcome), for ")
        assert "more than defer_max_s 3600" in late.unreadable[vault]
    finally:
        store.close()


def test_a_vault_with_an_attempt_whose_id_is_not_recorded_yet_is_deferred(traded: Traded, tmp_path: Path) -> None:
    # as an Ultra order the maker pays for, between its signed entry (no id yet) and /execute's answer
    tid, intent, _ = _a_confirmed_trade(traded)

    def edit(e: Any, d: dict[str, Any]) -> dict[str, Any] | None:
        if e.correlation_id != tid or e.event_type == "TRADE_INTENT":
            return d
        if e.event_type == "TRADE_EXECUTION" and d.get("phase") == "signed":
            return {k: v for k, v in d.items() if k != "signature"}
        return None if e.event_type in ("TRADE_EXECUTION", "TRADE_CONFIRMATION") and d.get("signature") else d

    code, report = reconcile(traded, _copy_ledger(traded, tmp_path / "no-id", edit), "--vaults", intent["vault_id"])
    assert (code, report["mismatches"]) == (0, 0), report
    assert report["deferred"] == {
        intent["vault_id"]: f"trade {tid}: an Ultra attempt whose transaction id is not recorded yet"}


def test_a_trade_missing_from_the_ledger_is_caught(traded: Traded, tmp_path: Path) -> None:
    tid, intent, outcome = _a_confirmed_trade(traded)
    copy = _copy_ledger(traded, tmp_path / "missing", lambda e, d: None if e.correlation_id == tid else d)
    code, report = reconcile(traded, copy, "--vaults", intent["vault_id"])
    assert code == 1
    found = {m["asset"]: m for s in report["statements"] for m in s["mismatches"]}
    assert {m["cause"] for m in found.values()} == {"trade_the_ledger_lacks"}
    assert {intent["input_mint"], intent["output_mint"], LAMPORTS} <= found.keys()
    assert found[intent["input_mint"]]["difference"] < 0 < found[intent["output_mint"]]["difference"]
    assert found[LAMPORTS]["difference"] < 0  # its fee, paid by the vault's authority
    # the chain's own list of the vault's transactions names the one the ledger lacks
    assert report["lists_signatures"] is True
    assert found[LAMPORTS]["detail"] == f"the chain lists transactions the ledger lacks: {outcome['signature']}"


def _transfer_out(rpc: str, vault: str, mint: Pubkey, decimals: int, amount: int, market_maker: Pubkey) -> str:
    """A real SPL TransferChecked out of ``vault``'s account, signed by its authority; confirmed."""
    authority = dev_vault_authority(vault)
    owner = authority.pubkey()
    source = vault_token_account(owner, mint)
    dest = vault_token_account(market_maker, mint)  # not a vault: only ``vault``'s statement changes
    ix = Instruction(TOKEN_PROGRAM_ID, bytes([12]) + amount.to_bytes(8, "little") + bytes([decimals]), [
        AccountMeta(source, False, True), AccountMeta(mint, False, False), AccountMeta(dest, False, True),
        AccountMeta(owner, True, False)])
    reader = RpcReader(rpc)
    blockhash = Hash.from_string(reader._call("getLatestBlockhash", [{"commitment": "confirmed"}])["value"]["blockhash"])
    message = MessageV0.try_compile(owner, [ix], [], blockhash)
    tx = VersionedTransaction.populate(message, [authority.sign_message(to_bytes_versioned(message))])
    sig = reader._call("sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}])

    def confirmed() -> bool:
        status = reader._call("getSignatureStatuses", [[sig]])["value"][0]
        return bool(status) and status.get("confirmationStatus") in ("confirmed", "finalized")

    poll(confirmed, 30, "the transfer out confirmed")
    return sig


def test_a_transfer_out_behind_the_engines_back_is_caught(traded: Traded) -> None:
    # last in this module: it changes the chain under the other tests' ledger
    stable = traded.config.token_registry().stable
    vault = "vault-0042"
    genesis = build_genesis(traded.config.localnet, traded.config.token_registry())
    sig = _transfer_out(traded.rpc, vault, stable.mint, stable.decimals, 1, genesis.market_maker.pubkey())  # one base unit
    code, report = reconcile(traded, traded.data)
    assert code == 1 and report["mismatches"] == 2, report["mismatches"]
    found = {(m["vault_id"], m["asset"]): m for s in report["statements"] for m in s["mismatches"]}
    usdc, fee = found[(vault, str(stable.mint))], found[(vault, LAMPORTS)]
    assert (usdc["cause"], usdc["difference"], usdc["trade_id"]) == ("trade_the_ledger_lacks", -1, None)
    assert fee["cause"] == "trade_the_ledger_lacks" and fee["difference"] == -5_000  # the transfer's fee
    assert usdc["detail"] == fee["detail"] == f"the chain lists transactions the ledger lacks: {sig}"
    violations = _violations(traded.config, traded.data)
    assert {(v["vault_id"], v["asset"], v["difference"]) for v in violations} == {
        (vault, str(stable.mint), -1), (vault, LAMPORTS, -5_000)}


def test_the_engine_reconciles_counts_and_halts_on_a_mismatch(traded: Traded, monkeypatch: pytest.MonkeyPatch) -> None:
    # after the transfer out above: the engine's own run finds it, sets the gauge, and halts
    monkeypatch.setenv(HTTP_KEY_ENV, HTTP_KEY)
    port = free_port()
    config = traded.config_path.with_name("engine-halting.toml")
    config.write_text(
        traded.config_path.read_text().replace("[http]\nenabled = false\n", f"[http]\nport = {port}\n")
        + "halt_on_mismatch = true\n"
    )
    engine = EngineProcess(config, traded.data, traded.data.parent / "engine-halting.log")
    try:
        poll(engine.status, 60, "the engine's debug socket", engine=engine)

        def scrape() -> str:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            except OSError:
                return ""

        metrics = poll(lambda: (m := scrape()) and 'xorj_reconciliation_runs_total{result="mismatch"} 1.0' in m and m,
                       120, "the engine's scheduled run (first_run_s = 0)", engine=engine, every=0.5)
        assert "xorj_reconciliation_mismatches 2.0" in metrics
        reply = request(engine.socket, "reconcile", timeout=5.0)  # starts another run; shows the finished one
        assert (reply["runs"], reply["last_result"], reply["last_mismatches"]) == (1, "mismatch", 2), reply
        assert "MISMATCH vault-0042 lamports" in reply["findings"] and "trade_the_ledger_lacks" in reply["findings"]
        poll(lambda: 'xorj_reconciliation_runs_total{result="mismatch"} 2.0' in scrape(), 120, "the run ctl asked for",
             engine=engine, every=0.5)
        halts = [e for e in _entries(traded.config, traded.data, "HALT") if e.get("check") == "reconciliation"]
        assert len(halts) == 1, "one halt per episode, not one per run"
        assert halts[0]["source"] == "risk:reconciliation" and "vault-0042" in halts[0]["reason"]
    finally:
        engine.kill()


def _entries(config: Config, data: Path, kind: str) -> list[dict[str, Any]]:
    store = open_store(config.audit, data, create=False)
    try:
        return [json.loads(e.details) for e in select_entries(store, event_types=(kind,))]
    finally:
        store.close()
