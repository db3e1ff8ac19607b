"""Crash recovery (issue 5): a real SIGKILL at each point of the pipeline loses no trade and
does none twice.

The localnet runs as its own process and outlives the engine. The engine runs as operators run
it (``xorj-actors run``) with two vaults trading; ``XORJ_FAULT_CRASH_AT=<point>`` makes it SIGKILL
itself at that point of the first trade to reach it (the vaults' first rounds put six trades in
flight). Every point runs through each API (``[jupiter] api``: ``swap``, ``ultra``). It is
restarted on the same data directory without the variable; once every trade the
crash left open is settled, a graceful halt (``ctl halt --graceful``) stops new trades, and when
every intent has its outcome the engine is stopped with SIGTERM. Then, read from the audit log
entry by entry and from the chain over JSON-RPC, never through the executor's own code:

- every TRADE_INTENT has exactly one TRADE_CONFIRMATION (and no trade id has two);
- each trade landed at most once: at most one of its signed attempts is known to the chain
  (``getSignatureStatuses`` with history search), no two trades share a landed signature, and a
  confirmed trade's is exactly the recorded signature, landed without error; no other outcome
  has a successful landing;
- every vault's and the market maker's token balances are genesis plus the confirmed trades'
  legs (the localnet's RFQ swap moves exactly the quoted amounts): nothing landed that the log
  does not account for;
- ``xorj-actors audit verify`` passes.

What each point leaves behind is checked before the restart, so each case really stops in its
window: before_sign/after_sign leave nothing durable as signed; before_send a durable signed
attempt, nothing sent, balances at genesis (Ultra: the crash between signing and ``/execute``,
the id still unknown); after_send one that is on chain (the first ``/execute`` answered); confirming one confirmed on chain with no
outcome recorded. After the restart a trade with a durable signed attempt ends ``confirmed`` with
that very signature (its bytes sent again, never signed again; Ultra's id is the one ``/execute``
answered in the ``sent`` entries); one without ends ``expired``
("never sent").

The blockhash window is 3,000 blocks of 20 ms (60 s) in the five cases, so that what is tested is
the rebroadcast of the bytes signed before the crash however slow the restart. The last case (each API) uses
the real 150-block window and restarts only once the signed attempt's blockhash has expired: the
trade must be signed again exactly once and land once.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from solana.rpc.async_api import AsyncClient
from solders.transaction_status import TransactionConfirmationStatus

from tests.chaos.crash_helpers import (
    ENGINE_AGAINST_LOCALNET,
    existing_token_balances,
    EngineProcess,
    Ledger,
    LocalnetProcess,
    Trade,
    cli,
    poll,
    read_ledger,
    signature_statuses,
    token_balances,
)
from xorj_actors.config import Config, load_config
from xorj_actors.execution import CRASH_POINTS
from xorj_actors.localnet.genesis import build_genesis
from xorj_actors.localnet.jupiter_desk import escrow_address

#: The same for the localnet and the engine, so that both derive the same genesis addresses.
LOCALNET = """
[localnet]
seed = "xorj-crash-recovery"
slot_ms = 20
confirmed_lag = 1
finalized_lag = 4
blockhash_valid_blocks = {blockhash_valid_blocks}
vaults = 2
"""

LOCALNET_FILE = LOCALNET + """
[vaults]
count = 2
"""

ENGINE_FILE = ENGINE_AGAINST_LOCALNET + LOCALNET + "enabled = false\n"

#: Trades that never got sent count as failures for this breaker (see the report); the expiry
#: case needs it closed so that the expired attempt is retried instead of refused.
TOLERANT_TRADE_FAILURE_BREAKER = """
[breakers.trade_failure_rate]
max_failures = 1000
max_consecutive = 1000
"""

SIGNED_BEFORE_CRASH = ("before_send", "after_send", "confirming")
#: Every crash point through each API the executor trades by.
CASES = [(point, api) for api in ("swap", "ultra") for point in CRASH_POINTS]
LONG_WINDOW = 3000
REAL_WINDOW = 150


@dataclass
class Setup:
    localnet: LocalnetProcess
    config_path: Path
    config: Config
    data: Path
    tmp: Path
    api: str

    @property
    def rpc(self) -> str:
        return self.localnet.urls["rpc"]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Callable[..., Setup]]:
    """``setup(api, blockhash_valid_blocks, extra)``: a localnet process and an engine config for it
    that trades through ``api`` (``[jupiter] api``: ``swap`` or ``ultra``, no fallback)."""
    started: list[LocalnetProcess] = []

    def make(api: str, blockhash_valid_blocks: int = LONG_WINDOW, extra: str = "") -> Setup:
        window = {"blockhash_valid_blocks": blockhash_valid_blocks}
        ln_config = tmp_path / "localnet.toml"
        ln_config.write_text(LOCALNET_FILE.format(**window))
        ln = LocalnetProcess(ln_config, tmp_path / "localnet.log")
        started.append(ln)
        config_path = tmp_path / "engine.toml"
        config_path.write_text(ENGINE_FILE.format(**ln.urls, **window, api=api) + extra)
        return Setup(ln, config_path, load_config(config_path), tmp_path / "var", tmp_path, api)

    yield make
    for ln in started:
        ln.stop()


@pytest.mark.parametrize(("point", "api"), CASES)
def test_a_sigkill_at_any_point_loses_no_trade_and_does_none_twice(
    point: str, api: str, setup: Callable[..., Setup]
) -> None:
    s = setup(api)
    at_crash = _crash(s, point)
    left_open = {t.trade_id: t for t in at_crash.open()}
    _check_the_crash_window(s, point, at_crash)

    final = _recover(s, left_open)

    _check_left_open_settled(left_open, final, signed_again=False)
    if point in SIGNED_BEFORE_CRASH:
        assert any(final.trades[t].outcome["status"] == "confirmed" for t in left_open)
    _check_invariants(s, final)


@pytest.mark.parametrize("api", ["swap", "ultra"])
def test_a_signed_trade_whose_blockhash_expired_while_down_is_signed_again_and_lands_once(
    api: str, setup: Callable[..., Setup],
) -> None:
    s = setup(api, REAL_WINDOW, TOLERANT_TRADE_FAILURE_BREAKER)
    at_crash = _crash(s, "before_send")
    signed = {t.trade_id: t for t in at_crash.open() if t.signed}
    assert signed, "no durable signed attempt at the crash"
    last_valid = max(a["last_valid_block_height"] for t in signed.values() for a in t.signed)
    # Restart only once every signed attempt can no longer land (a poll of the chain, not a sleep).
    poll(lambda: _block_height(s.rpc) > last_valid, 30, f"block height past {last_valid}")

    left_open = {t.trade_id: t for t in at_crash.open()}
    final = _recover(s, left_open)

    _check_left_open_settled(left_open, final, signed_again=True)
    _check_invariants(s, final)


# -- the steps ---------------------------------------------------------------------------------


def _crash(s: Setup, point: str) -> Ledger:
    """Run the engine until it SIGKILLs itself at ``point``; the audit log as it left it."""
    crashed = EngineProcess(s.config_path, s.data, s.tmp / "engine-crashed.log", crash_at=point)
    rc = crashed.wait_exit(60)
    assert rc == -signal.SIGKILL, f"exit {rc}, not SIGKILL:\n{crashed.log_tail()}"
    assert f"fault injection: SIGKILL at {point}" in crashed.log_text()
    ledger = read_ledger(s.config, s.data)
    assert ledger.open(), "the crash left no open trade: nothing to recover"
    return ledger


def _recover(s: Setup, left_open: dict[str, Trade]) -> Ledger:
    """Restart, wait until what the crash left open is settled, halt, let everything settle, stop."""
    engine = EngineProcess(s.config_path, s.data, s.tmp / "engine.log")
    try:
        ledger = poll(
            lambda: _settled(read_ledger(s.config, s.data), left_open),
            30, "the trades left open by the crash to be settled", engine=engine,
        )
        assert ledger.reconciling[-1]["open_trades"] == len(left_open), "the executor read back every open trade"
        poll(engine.status, 30, "the engine's debug socket", engine=engine)
        halt = engine.ctl("halt", "--graceful", "--reason", "crash-recovery test: quiesce")
        assert halt.returncode == 0, halt.stdout + halt.stderr
        poll(lambda: (st := engine.status()) and st["kill_switch"]["complete"], 30, "halt complete", engine=engine)
        poll(lambda: not read_ledger(s.config, s.data).open(), 30, "every intent to have its outcome", engine=engine)
    except BaseException:
        engine.kill()
        raise
    rc = engine.stop()
    assert rc == 0, engine.log_tail()
    return read_ledger(s.config, s.data)


def _settled(ledger: Ledger, left_open: dict[str, Trade]) -> Ledger | None:
    """The ledger once the restarted executor has reconciled and settled every trade left open."""
    if len(ledger.reconciling) >= 2 and all(ledger.trades[t].outcomes for t in left_open):
        return ledger
    return None


def _block_height(rpc: str) -> int:
    async def read() -> int:
        async with AsyncClient(rpc, timeout=10) as client:
            return (await client.get_block_height()).value

    return asyncio.run(read())


# -- the checks --------------------------------------------------------------------------------


def _check_the_crash_window(s: Setup, point: str, ledger: Ledger) -> None:
    """What the log and the chain hold right after the SIGKILL, before anyone recovers it."""
    _check_the_api(s, ledger)
    signed = [t.trade_id for t in ledger.trades.values() if t.signed]
    sent = [t.trade_id for t in ledger.trades.values() if t.sent]
    statuses = signature_statuses(s.rpc, ledger.signatures())
    on_chain = [sig for sig, status in statuses.items() if status is not None]
    actual, genesis = _balances(s, [])
    if point in ("before_sign", "after_sign", "before_send"):
        # No trade was sent yet: the chain holds genesis, to the base unit.
        assert actual == genesis, f"balances moved before any trade passed {point}"
    if point in ("before_sign", "after_sign"):
        # Every trade passes both points before its signed attempt can be durable.
        assert not signed, f"signed attempts durable before any trade passed {point}: {signed}"
        return
    assert any(t.signed for t in ledger.open()), "no open trade with a durable signed attempt"
    if point == "before_send":
        assert not on_chain, f"sent before any trade passed before_send: {on_chain}"
        assert not sent, f"sent entries before any trade passed before_send: {sent}"
        if s.api == "ultra":
            # Between signing and /execute: the maker's signature (the id) is still to come.
            for a in (a for t in ledger.open() for a in t.signed):
                assert a["signature"] == "" and a["our_signature"] and a["request_id"] and a["transaction"], a
    elif point == "after_send":
        # Ultra's maker-paid id is durable before after_send (the id is the only way to find
        # its landing once /execute forgets the order): it is in the log and on chain.
        assert on_chain, "the first send returned but nothing is on chain"
    else:  # confirming: the chain gave an outcome, and the log has not recorded it
        deep = (TransactionConfirmationStatus.Confirmed, TransactionConfirmationStatus.Finalized)
        assert any(statuses[sig].err is None and statuses[sig].confirmation_status in deep for sig in on_chain), statuses
        recorded = [t.trade_id for t in ledger.trades.values() if t.outcome and t.outcome["status"] == "confirmed"]
        assert not recorded, f"confirmed outcomes recorded before any trade passed confirming: {recorded}"


def _check_the_api(s: Setup, ledger: Ledger) -> None:
    """Every attempt was built by the API the config chose (``swap`` or ``ultra``, no fallback)."""
    apis = {a["api"] for t in ledger.trades.values() for a in t.signed}
    apis |= {o["api"] for t in ledger.trades.values() for o in t.outcomes if o.get("api") is not None}
    assert apis <= {s.api}, f"configured {s.api}, traded through {apis}"


def _check_left_open_settled(left_open: dict[str, Trade], final: Ledger, *, signed_again: bool) -> None:
    """Each trade the crash left open ends as its durable state says it must.

    With a durable signed attempt: ``confirmed``; by those very bytes (sent again, by
    ``sendTransaction`` or Ultra's ``/execute``; nothing signed again) unless ``signed_again``
    (its blockhash expired while the engine was down), then by a new attempt signed after the
    restart. Without one: ``expired``, never sent, never signed.
    """
    for trade_id, before in left_open.items():
        after = final.trades[trade_id]
        outcome = after.outcome
        assert outcome is not None, f"{trade_id}: lost"
        if before.signed:
            assert outcome["status"] == "confirmed", (trade_id, outcome)
            assert after.transactions[: len(before.signed)] == before.transactions
            if signed_again:
                assert len(after.signed) > len(before.signed), f"{trade_id}: not signed again"
            else:
                assert after.transactions == before.transactions, f"{trade_id}: signed again after the crash"
            landed = after.attempt_id(after.signed[-1])
            assert landed and outcome["signature"] == landed and outcome["attempts"] == len(after.signed), outcome
        else:
            assert outcome["status"] == "expired" and "never sent" in (outcome["error"] or ""), (trade_id, outcome)
            assert not after.signed, f"{trade_id}: signed after the crash"


def _check_invariants(s: Setup, final: Ledger) -> None:
    _check_the_api(s, final)
    _check_every_intent_has_one_outcome(final)
    _check_landed_at_most_once(final, signature_statuses(s.rpc, final.signatures()))
    _check_balances(s, final)
    verify = subprocess.run(
        cli("audit", "verify", "--config", str(s.config_path), "--data-dir", str(s.data)),
        capture_output=True, text=True, timeout=60,
    )
    # 3: chain and HMACs intact; these configs do not anchor (0 needs every entry anchored).
    assert verify.returncode == 3 and verify.stdout.startswith("UNANCHORED: "), verify.stdout + verify.stderr


def _check_every_intent_has_one_outcome(final: Ledger) -> None:
    twice = {t.trade_id: t.outcomes for t in final.trades.values() if len(t.outcomes) > 1}
    assert not twice, f"trades with more than one outcome: {twice}"
    lost = [t.trade_id for t in final.intents() if not t.outcomes]
    assert not lost, f"intents without an outcome: {lost}"


def _check_landed_at_most_once(final: Ledger, statuses: dict[str, Any]) -> None:
    """At most one attempt of each trade is on chain, no two trades share a landed id, and a
    confirmed trade's recorded id landed without error (Ultra's ids: from ``/execute``'s answers)."""
    landed = Counter(sig for t in final.trades.values() for sig in set(t.signatures) if statuses[sig] is not None)
    shared = [sig for sig, n in landed.items() if n > 1]
    assert not shared, f"signatures landed for more than one trade: {shared}"
    for t in final.intents():
        found = [sig for sig in t.signatures if statuses[sig] is not None]
        assert len(found) <= 1, f"{t.trade_id}: {len(found)} of its attempts landed: {found}"
        outcome = t.outcome
        assert outcome is not None
        if outcome["status"] == "confirmed":
            assert found == [outcome["signature"]], (t.trade_id, found, outcome)
            assert statuses[found[0]].err is None, (t.trade_id, statuses[found[0]])
        else:
            succeeded = [sig for sig in found if statuses[sig].err is None]
            assert not succeeded, f"{t.trade_id} is {outcome['status']} but {succeeded} landed without error"


def _check_balances(s: Setup, final: Ledger) -> None:
    """Genesis plus the confirmed legs, for every vault and the market maker, to the base unit."""
    actual, expected = _balances(s, final.intents())
    wrong = {k: (actual[k], expected[k]) for k in actual if actual[k] != expected[k]}
    assert not wrong, f"balances (on chain, expected from the log) differ: {wrong}"


def _balances(s: Setup, trades: list[Trade]) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """(on chain, genesis plus the legs of ``trades``' confirmed outcomes): every vault's and the
    market maker's token balances."""
    genesis = build_genesis(s.config.localnet)
    expected: Counter[tuple[str, str]] = Counter()
    accounts = {}
    for v in genesis.vaults:
        for t in genesis.tokens:
            expected[(v.vault_id, t.symbol)] = t.vault_amount
            accounts[(v.vault_id, t.symbol)] = v.token_accounts[t.symbol]
    for t in genesis.tokens:
        expected[("market_maker", t.symbol)] = t.market_maker_amount
        accounts[("market_maker", t.symbol)] = genesis.market_maker_accounts[t.symbol]
    for trade in trades:
        outcome, intent = trade.outcome, trade.intent
        if outcome is None or intent is None or outcome["status"] != "confirmed":
            continue
        attempt = trade.attempt(outcome["signature"])
        assert (attempt["in_amount"], attempt["out_amount"]) == (outcome["in_amount"], outcome["out_amount"])
        sell, buy = genesis.token(intent["input_mint"]).symbol, genesis.token(intent["output_mint"]).symbol
        expected[(intent["vault_id"], sell)] -= attempt["in_amount"]
        expected[(intent["vault_id"], buy)] += attempt["out_amount"]
        expected[("market_maker", sell)] += attempt["in_amount"]
        expected[("market_maker", buy)] -= attempt["out_amount"]
    actual = token_balances(s.rpc, accounts)
    # The Swap API's route on the localnet takes its output from the wallet's escrow, which the
    # market maker funds at /swap/v1/swap-instructions: a route never sent leaves it there, still his.
    escrows = {("market_maker", t.symbol, v.vault_id): escrow_address(v.authority, t.mint) for v in genesis.vaults for t in genesis.tokens}
    for (who, symbol, _), amount in existing_token_balances(s.rpc, escrows).items():
        actual[(who, symbol)] += amount
    return actual, {k: expected[k] for k in accounts}
