"""The operator flatten: REDUCING lets only exposure-reducing trades through, then halts again.

The first test runs the real engine against the in-process localnet: vaults really buy, are
halted, and two of them are flattened on chain. The others use the light engine of
tests/plugins/engine.py (no chain) and a stand-in vault that reports only when told to, so the
kill switch stays REDUCING exactly as long as a test needs.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisors import ChildSpec, StartChild
from tests.execution.conftest import BASE, Harness, merged_config
from tests.plugins.engine import RECOVERY_KEYS, authorise, ks_status, wait_until
from xorj_actors.engine import Engine
from xorj_actors.execution import EXECUTOR_NAME, GetExecutorStatus
from xorj_actors.kill_switch import (
    KILL_SWITCH_NAME,
    VAULT_ROLE,
    EnterMaintenance,
    FlattenDone,
    FlattenVault,
    HaltBoard,
    Participant,
    Recover,
)
from xorj_actors.kill_switch._actor import _FlattenDeadline
from xorj_actors.messages import HaltMode, Trigger
from xorj_actors.ops.ctl import CtlError, request
from xorj_actors.signers import SignRequest
from xorj_actors.vaults import GetVaultStatus

# -- helpers ---------------------------------------------------------------------------------------


class HeldVault(Participant):
    """A stand-in vault: it records FlattenVault and never reports (the test reports for it).

    Asked ``"asked?"``, it answers the FlattenVault messages it has had (the test asks rather than
    reading the list of a running actor from its own thread).
    """

    role = VAULT_ROLE

    def __init__(self, board: HaltBoard) -> None:
        super().__init__(board)
        self.asked: list[FlattenVault] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, FlattenVault):
            self.asked.append(message)
            return None
        if message == "asked?":
            return tuple(self.asked)
        return super().on_receive(message)


def named(engine: Engine, name: str) -> Any:
    for info in engine.runtime.actors():
        if info.name == name and info.ref is not None:
            return info.ref
    raise KeyError(name)


def add_held_vault(engine: Engine, name: str = "vault-0100") -> Any:
    """Start a :class:`HeldVault` under ``vaults``; its ref."""
    board = engine.board
    ref = named(engine, "vaults").ask(StartChild(ChildSpec(name, lambda: HeldVault.start(board))), timeout=2)
    wait_until(lambda: name in ks_status(engine).acked or not engine.board.status.halted, what=f"{name} registered")
    return ref


def asked(held: Any) -> tuple[FlattenVault, ...]:
    """The FlattenVault messages a HeldVault has had, asked of it."""
    return held.ask("asked?", timeout=5)


def flatten(engine: Engine, vaults: list[str], operator: str = "alice", reason: str = "drill") -> dict[str, Any]:
    return request(engine.socket_path, "flatten", {"vaults": vaults, "operator": operator, "reason": reason})


def report(engine: Engine, vault: str, flatten_id: str, detail: str = "held vault done") -> None:
    ks = engine.runtime.whereis(KILL_SWITCH_NAME)
    ks.tell(FlattenDone(vault_id=vault, flatten_id=flatten_id, sold=0, failed=0, detail=detail))


def halt(engine: Engine, mode: HaltMode = HaltMode.GRACEFUL) -> int:
    before = ks_status(engine).epoch
    engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=mode, reason="test halt", source="test"))
    wait_until(lambda: ks_status(engine).epoch == before + 1 and ks_status(engine).complete, 10, "halt complete")
    return before + 1


def audit_rows(engine: Engine) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    db = sqlite3.connect(engine.data_dir / "audit.db")
    try:
        rows = db.execute(
            "SELECT event_type, actor, correlation_id, details FROM audit_entries ORDER BY sequence"
        ).fetchall()
    finally:
        db.close()
    return [(t, a, c, json.loads(d)) for t, a, c, d in rows]


def audited(engine: Engine, what: Callable[[str | None, dict[str, Any]], bool], count: int = 1) -> list[dict[str, Any]]:
    """The details of the entries ``what(actor, details)`` selects, once ``count`` are written (the log is async)."""

    def found() -> list[dict[str, Any]]:
        return [d for _, a, _, d in audit_rows(engine) if what(a, d)]

    wait_until(lambda: len(found()) >= count, 10, f"{count} audit entries")
    return found()


def results(engine: Engine) -> dict[str, tuple[int, int, str]]:
    return {v: (sold, failed, detail) for v, sold, failed, detail in ks_status(engine).flatten_results}


# -- on chain ----------------------------------------------------------------------------------

VAULTS = 4
MARKET = f"""
[vaults]
count = {VAULTS}
round_interval_s = 0.3
[localnet]
vaults = {VAULTS}
[localnet.quote]
manual_clock = true
[localnet.quant]
manual_clock = true
"""


@pytest.fixture
def chain_engine(tmp_path: Path) -> Iterator[Harness]:
    engine = Engine(merged_config(BASE, MARKET), tmp_path / "var", environ=dict(RECOVERY_KEYS))
    engine.start()
    try:
        h = Harness(engine)
        wait_until(h.reconciled, 10, "executor reconciled")
        yield h
    finally:
        hung = engine.stop(timeout=15)
        assert not hung, f"actors did not stop: {hung}"


def balances(h: Harness, vault: int) -> dict[str, int]:
    return {t.symbol: h.balance(vault, t.symbol) for t in h.genesis.tokens}


def volatile_usd(h: Harness, held: dict[str, int], prices: dict[str, float]) -> dict[str, float]:
    return {
        t.symbol: held[t.symbol] / 10**t.decimals * prices[t.symbol] for t in h.genesis.tokens if not t.stable
    }


def test_flatten_sells_the_chosen_vaults_into_the_stablecoin_and_halts_again(chain_engine: Harness) -> None:
    h = chain_engine
    engine = h.engine
    prices = {t.symbol: t.price_usd for t in h.genesis.tokens}  # manual walk: genesis prices hold
    # Rounds buy the traders' volatile tokens.
    wait_until(
        lambda: all(sum(volatile_usd(h, balances(h, v), prices).values()) > 100 for v in range(VAULTS)),
        40, "every vault holding volatile tokens",
    )
    epoch = halt(engine, HaltMode.GRACEFUL)

    def settled() -> bool:
        statuses = [named(engine, f"vault-{v:04d}").ask(GetVaultStatus(), timeout=5) for v in range(VAULTS)]
        executor = engine.runtime.whereis(EXECUTOR_NAME).ask(GetExecutorStatus(), timeout=5)
        return all(s.phase == "idle" and not s.pending for s in statuses) and executor.in_flight == 0

    wait_until(settled, 20, "rounds settled through the graceful halt")
    before = {v: balances(h, v) for v in range(VAULTS)}
    held = add_held_vault(engine)  # keeps the kill switch REDUCING until the test reports for it

    reply = flatten(engine, ["vault-0000", "vault-0001", "vault-0100"], reason="drill: flatten two vaults")
    assert reply["accepted"] and reply["state"] == "REDUCING", reply
    flatten_id = reply["flatten_id"]
    status = engine.board.status
    assert status.state == "REDUCING" and status.halted and status.reducing and status.epoch == epoch
    wait_until(lambda: len(asked(held)) == 1, what="the stand-in vault asked")
    assert asked(held)[0] == FlattenVault(epoch=epoch, flatten_id=flatten_id)

    # Ordinary work is refused while REDUCING: by the signer...
    signer = named(engine, "signer:vault-authority")
    refused = signer.ask(SignRequest(vault_id="vault-0000", trade_id="ordinary", payload=b"msg"), timeout=5)
    assert refused.signature is None and refused.refused.startswith("halted: REDUCING"), refused
    assert signer.ask(SignRequest(vault_id="vault-0000", trade_id="reducing", payload=b"msg", reduces_exposure=True), timeout=5).signature
    # ...and by the executor's gate, before anything is quoted or signed.
    outcome = h.execute(h.request("vault-0003:ordinary:0", vault=3, sell="USDC", buy="JUP"))
    assert outcome.status == "rejected" and outcome.error_class == "halted", outcome
    assert outcome.error == f"kill switch REDUCING (epoch {epoch}): only trades that reduce exposure", outcome
    # A sell that would reduce exposure, but of a vault not being flattened, is refused too.
    other = dataclasses.replace(h.request("vault-0003:other:0", vault=3, sell="JUP", buy="USDC"), reduces_exposure=True)
    outcome = h.execute(other)
    assert outcome.status == "rejected" and outcome.error_class == "halted", outcome
    assert outcome.error == f"kill switch REDUCING (epoch {epoch}): vault-0003 is not being flattened", outcome

    wait_until(lambda: ks_status(engine).flatten_pending == ("vault-0100",), 30, "both real vaults flattened")
    done = results(engine)
    for vault in ("vault-0000", "vault-0001"):
        sold, failed, detail = done[vault]
        assert sold >= 1 and failed == 0, (vault, done[vault])
        assert detail.startswith("nothing left to sell"), detail
    assert engine.board.status.state == "REDUCING"  # one vault still to report
    report(engine, "vault-0100", flatten_id)
    wait_until(lambda: ks_status(engine).state == "TRIGGERED", 5, "back to TRIGGERED")
    status = engine.board.status
    assert status.halted and not status.reducing and status.epoch == epoch
    assert json.loads((engine.data_dir / "kill_switch.json").read_text())["state"] == "TRIGGERED"

    # On chain, read over JSON-RPC: the flattened vaults hold only the stablecoin...
    for v in (0, 1):
        after = balances(h, v)
        sold_any = False
        for symbol, usd in volatile_usd(h, before[v], prices).items():
            if usd >= engine.config.vaults.min_trade_usd:
                assert after[symbol] == 0, (v, symbol, after[symbol])
                sold_any = True
            else:  # dust is left alone
                assert after[symbol] == before[v][symbol], (v, symbol)
        assert sold_any and after["USDC"] > before[v]["USDC"], (v, before[v], after)
    # ...and the others are untouched.
    for v in (2, 3):
        assert balances(h, v) == before[v], v

    audited(engine, lambda a, d: d.get("what") == "flatten ended")
    rows = audit_rows(engine)
    started = [d for t, a, _, d in rows if a == "kill_switch" and d.get("what") == "flatten started"]
    assert len(started) == 1 and started[0]["operator"] == "alice" and started[0]["flatten_id"] == flatten_id
    assert started[0]["vaults"] == ["vault-0000", "vault-0001", "vault-0100"] and "drill" in started[0]["reason"]
    for vault in ("vault-0000", "vault-0001"):
        plans = [d for _, a, c, d in rows if a == vault and c == flatten_id and d.get("phase") == "flatten_plan"]
        assert plans and plans[0]["sells"], (vault, plans)
        confirmed = [d for t, _, c, d in rows if t == "TRADE_CONFIRMATION" and (c or "").startswith(f"{vault}:{flatten_id}")]
        assert confirmed and all(d.get("status") == "confirmed" for d in confirmed), confirmed
        (result,) = [d for _, a, c, d in rows if a == vault and c == flatten_id and d.get("phase") == "flatten_done"]
        assert result["sold"] == len(confirmed) and result["failed"] == 0
    # The gate refused the ordinary trade before its intent was even written.
    for trade_id in ("vault-0003:ordinary:0", "vault-0003:other:0"):
        entries = [t for t, _, c, _ in rows if c == trade_id]
        assert entries == ["TRADE_CONFIRMATION"], (trade_id, entries)  # its rejection only: no TRADE_INTENT
    (ended,) = [d for _, a, _, d in rows if a == "kill_switch" and d.get("what") == "flatten ended"]
    assert ended["state"] == "TRIGGERED" and set(ended["results"]) == {"vault-0000", "vault-0001", "vault-0100"}

    # Flattening a flat vault: nothing to sell, reported at once, halted again.
    flat = balances(h, 0)
    again = flatten(engine, ["vault-0000"])
    wait_until(lambda: ks_status(engine).state == "TRIGGERED" and ks_status(engine).flatten_id == again["flatten_id"],
               15, "second flatten over")
    sold, failed, detail = results(engine)["vault-0000"]
    assert (sold, failed) == (0, 0) and detail.startswith("nothing to sell"), detail
    assert balances(h, 0) == flat


# -- the kill switch's reducing mode (no chain) --------------------------------------------------


def test_flatten_is_refused_while_armed_for_unknown_vaults_and_while_reducing(engine: Engine) -> None:
    assert ks_status(engine).state == "ARMED"
    with pytest.raises(CtlError, match="refused: flatten only while halted"):
        flatten(engine, [])
    epoch = halt(engine)
    with pytest.raises(CtlError, match="unknown vault.*vault-0999"):
        flatten(engine, ["vault-0000", "vault-0999"])
    with pytest.raises(CtlError, match="bad_request"):
        flatten(engine, ["not-a-vault"])
    with pytest.raises(CtlError, match="bad_request.*operator"):
        request(engine.socket_path, "flatten", {"reason": "no operator"})
    assert ks_status(engine).state == "TRIGGERED"
    add_held_vault(engine)
    reply = flatten(engine, ["vault-0100"])
    assert engine.board.status.reducing
    with pytest.raises(CtlError, match="already under way"):
        flatten(engine, ["vault-0000"])
    ks = engine.runtime.whereis(KILL_SWITCH_NAME)
    refused = ks.ask(Recover(operator="test", **authorise(epoch)), timeout=5)
    assert not refused.accepted and "REDUCING" in refused.reason
    assert not ks.ask(EnterMaintenance(reason="x", source="test"), timeout=5).accepted
    assert ks_status(engine).state == "REDUCING"
    report(engine, "vault-0100", reply["flatten_id"])
    wait_until(lambda: ks_status(engine).state == "TRIGGERED", what="back to TRIGGERED")
    refusals = audited(engine, lambda a, d: a == "kill_switch" and d.get("what") == "flatten refused", 3)
    # Refused by the kill switch (audited with who and which vaults); bad input never reached it.
    assert [r["refusal"].split(":")[0] for r in refusals] == [
        "flatten only while halted", "unknown vault(s), or not running", "a flatten is already under way (flatten-e1-"
        + reply["flatten_id"].rsplit("-", 1)[1] + ")",
    ], refusals
    assert all(r["operator"] == "alice" for r in refusals) and refusals[1]["vaults"] == ["vault-0000", "vault-0999"]
    # Recovery works again once the flatten is over.
    assert ks.ask(Recover(operator="test", **authorise(epoch, nonce="n-2")), timeout=5).accepted


def test_flatten_of_every_vault_returns_to_maintenance_when_all_report(engine: Engine) -> None:
    ks = engine.runtime.whereis(KILL_SWITCH_NAME)
    assert ks.ask(EnterMaintenance(reason="upgrade", source="test"), timeout=5).accepted
    epoch = ks_status(engine).epoch
    reply = flatten(engine, [])  # empty: every vault
    assert reply["vaults"] == [f"vault-{i:04d}" for i in range(10)]
    # No chain in this engine: each vault says why it sold nothing, at once.
    wait_until(lambda: ks_status(engine).state == "MAINTENANCE", what="back to MAINTENANCE")
    done = results(engine)
    assert set(done) == set(reply["vaults"])
    assert all(sold == failed == 0 and "cannot read the chain" in detail for sold, failed, detail in done.values()), done
    assert ks_status(engine).epoch == epoch and not engine.board.status.reducing


def test_a_trigger_during_reducing_wins(engine: Engine) -> None:
    epoch = halt(engine)
    add_held_vault(engine)
    reply = flatten(engine, ["vault-0100"])
    signer = named(engine, "signer:vault-authority")
    assert signer.ask(SignRequest(vault_id="vault-0000", trade_id="r", payload=b"m", reduces_exposure=True), timeout=5).signature
    engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.EMERGENCY, reason="worse", source="test"))
    wait_until(lambda: ks_status(engine).epoch == epoch + 1, what="the trigger taken")
    status = engine.board.status
    assert status.state == "TRIGGERED" and not status.reducing
    refused = signer.ask(SignRequest(vault_id="vault-0000", trade_id="r2", payload=b"m", reduces_exposure=True), timeout=5)
    assert refused.signature is None and refused.refused == "halted: the kill switch is not armed"
    assert results(engine)["vault-0100"][2].startswith("unfinished: interrupted by a trigger")
    report(engine, "vault-0100", reply["flatten_id"])  # late: changes nothing
    assert ks_status(engine).state == "TRIGGERED" and ks_status(engine).epoch == epoch + 1


def test_the_flatten_deadline_returns_to_the_halted_state(engine: Engine) -> None:
    halt(engine)
    add_held_vault(engine)
    reply = flatten(engine, ["vault-0100", "vault-0001"])
    wait_until(lambda: ks_status(engine).flatten_pending == ("vault-0100",), what="the real vault reported")
    ks = engine.runtime.whereis(KILL_SWITCH_NAME)
    ks.tell(_FlattenDeadline(flatten_id="some-other-flatten"))  # not this one: ignored
    assert ks_status(engine).state == "REDUCING"
    ks.tell(_FlattenDeadline(flatten_id=reply["flatten_id"]))  # the timer, fired now
    wait_until(lambda: ks_status(engine).state == "TRIGGERED", what="back to TRIGGERED")
    assert results(engine)["vault-0100"] == (0, 0, "no report within flatten_timeout_s")
    (ended,) = audited(engine, lambda a, d: d.get("what") == "flatten ended")
    assert ended["why"] == "timed out" and ended["results"]["vault-0001"]["detail"].startswith("cannot read the chain")


def test_a_restart_while_reducing_comes_back_triggered(engine_factory: Callable[..., Engine], tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    first = engine_factory(data_dir=data_dir)
    epoch = halt(first)
    add_held_vault(first)
    flatten(first, ["vault-0100"])
    state_file = data_dir / "kill_switch.json"
    assert json.loads(state_file.read_text())["state"] == "REDUCING"
    # The kill switch actor restarted in the process...
    old = first.runtime.whereis(KILL_SWITCH_NAME)
    old.stop(timeout=2)
    wait_until(lambda: first.runtime.whereis(KILL_SWITCH_NAME) not in (None, old), what="kill switch restarted")
    assert ks_status(first).state == "TRIGGERED" and not first.board.status.reducing
    assert json.loads(state_file.read_text())["state"] == "TRIGGERED"
    # ...and the whole process, killed while REDUCING. A clean stop ends the flatten first (the
    # vaults stop before the kill switch), so the file a crash leaves behind is put back.
    flatten(first, ["vault-0100"])
    crashed = state_file.read_text()
    assert json.loads(crashed)["state"] == "REDUCING"
    first.stop()
    assert json.loads(state_file.read_text())["state"] == "TRIGGERED"
    state_file.write_text(crashed)
    second = engine_factory(data_dir=data_dir)
    status = ks_status(second)
    assert status.state == "TRIGGERED" and status.epoch == epoch and "during a flatten" in (status.reason or "")
    assert second.board.status.halted and not second.board.status.reducing
    assert json.loads(state_file.read_text())["state"] == "TRIGGERED"
    interrupted = audited(second, lambda a, d: d.get("what") == "flatten interrupted by a restart", 2)
    assert len(interrupted) == 2 and all(d["state"] == "TRIGGERED" for d in interrupted)


def test_the_audited_summary_keeps_the_vaults_that_need_a_look(monkeypatch: pytest.MonkeyPatch) -> None:
    from xorj_actors.kill_switch import _flatten

    monkeypatch.setattr(_flatten, "MAX_AUDITED_RESULTS", 2)
    f = _flatten.Flattening("fl", 1, "TRIGGERED", "alice", "drill", ("vault-0000", "vault-0001", "vault-0002", "vault-0003"))
    f.report("vault-0000", 2, 0, "nothing left to sell")
    f.report("vault-0001", 0, 0, "nothing to sell")
    f.report("vault-0002", 0, 0, "no report within flatten_timeout_s")
    f.report("vault-0003", 1, 1, "nothing left to sell")
    summary = f.summary()
    assert summary["sold"] == 3 and summary["failed"] == 1 and summary["vaults"] == 4
    assert list(summary["results"]) == ["vault-0002", "vault-0003"] and summary["results_omitted"] == 2
