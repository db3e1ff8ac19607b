"""The trade ledger over several nodes' chains in one store: fail-over reads the open intents
other nodes left, and a trade settled in any chain is final everywhere (both backends)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from xorj_actors.audit import AuditLog, AuditSettings, EventType, Store, open_store
from xorj_actors.execution import TradeOutcome, TradeRequest, TradeStatus
from xorj_actors.execution._ledger import (
    TradeRecord,
    load_adoptable_trades,
    load_open_trades,
    lookup_trade,
    outcome_details,
    request_details,
)

A, B, C = "node-a", "node-b", "node-c"
USDC, JUP = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN"


class Node:
    """One node's audit log (its own chain) writing the executor's entries, as the executor does."""

    def __init__(self, settings: AuditSettings, data_dir: Path, chain: str) -> None:
        self.chain = chain
        self.log = AuditLog.open(dataclasses.replace(settings, chain=chain), data_dir, "production")

    def intent(self, req: TradeRequest) -> None:
        self.log.append(EventType.TRADE_INTENT, actor="executor", correlation_id=req.trade_id, details=request_details(req))

    def signed(self, req: TradeRequest, attempt: int) -> None:
        self.log.append(
            EventType.TRADE_EXECUTION, actor="executor", correlation_id=req.trade_id,
            details={"phase": "signed", "attempt": attempt, "signature": f"sig-{req.trade_id}-{attempt}",
                     "api": "swap", "transaction": "AAAA", "last_valid_block_height": 100 + attempt,
                     "in_amount": req.amount_in, "out_amount": 7},
        )

    def failed(self, req: TradeRequest, attempt: int) -> None:
        self.log.append(
            EventType.TRADE_EXECUTION, actor="executor", correlation_id=req.trade_id,
            details={"phase": "attempt_failed", "attempt": attempt, "error_class": "expired_blockhash"},
        )

    def outcome(self, req: TradeRequest, status: TradeStatus, attempts: int) -> None:
        done = TradeOutcome(
            trade_id=req.trade_id, vault_id=req.vault_id, input_mint=req.input_mint, output_mint=req.output_mint,
            status=status, signature=f"sig-{req.trade_id}-{attempts}", attempts=attempts,
        )
        self.log.append(
            EventType.TRADE_CONFIRMATION, actor="executor", correlation_id=req.trade_id, details=outcome_details(done)
        )


def trade(vault: str, n: int) -> TradeRequest:
    return TradeRequest(
        trade_id=f"{vault}-round-1-{n}", vault_id=vault, round_key="round-1", index=n,
        input_mint=USDC, output_mint=JUP, amount_in=1_000_000 + n, slippage_bps=50, value_usd=1.0,
    )


@pytest.fixture
def nodes(audit_settings: AuditSettings, data_dir: Path, audit_key: bytes) -> Iterator[dict[str, Node]]:
    started = {name: Node(audit_settings, data_dir, name) for name in (A, B, C)}
    yield started
    for node in started.values():
        node.log.close()


@pytest.fixture
def store_of(audit_settings: AuditSettings, data_dir: Path) -> Iterator:
    opened: list[Store] = []

    def open_(chain: str) -> Store:
        opened.append(open_store(dataclasses.replace(audit_settings, chain=chain), data_dir))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


def summary(records: list[TradeRecord]) -> list[tuple[str, str, list[int]]]:
    return [(r.trade_id, r.intent_chain, [a.number for a in r.attempts]) for r in records]


def test_a_new_owner_reads_the_previous_owners_open_intents_of_its_vaults(nodes, store_of, audit_key):
    x1, x2, y1, done, b_own = trade("vault-x", 1), trade("vault-x", 2), trade("vault-y", 1), trade("vault-x", 3), trade("vault-z", 1)
    a, b = nodes[A], nodes[B]
    a.intent(x1)
    a.signed(x1, 1)
    b.intent(b_own)  # B's own open trade: not B's to adopt
    a.intent(y1)  # another vault of A's: not asked for
    a.intent(x2)  # nothing signed yet: adopted with no attempt (settled as never sent)
    a.intent(done)
    a.signed(done, 1)
    a.outcome(done, TradeStatus.CONFIRMED, 1)  # final in A's own chain
    adopted = load_adoptable_trades(store_of(B), audit_key, ["vault-x"])
    assert summary(adopted) == [(x1.trade_id, A, [1]), (x2.trade_id, A, [])]
    first = adopted[0]
    assert first.request == dataclasses.replace(x1, reply_to=None)
    assert (first.attempts[0].signature, first.attempts[0].last_valid_block_height) == (f"sig-{x1.trade_id}-1", 101)
    both = load_adoptable_trades(store_of(B), audit_key, ["vault-x", "vault-y"])
    assert [r.trade_id for r in both] == [x1.trade_id, y1.trade_id, x2.trade_id]  # the log's order
    assert load_adoptable_trades(store_of(B), audit_key, []) == []
    # B's own crash recovery reads only what B opened; A's, only what A opened.
    assert summary(load_open_trades(store_of(B), audit_key)) == [(b_own.trade_id, B, [])]
    assert [r.trade_id for r in load_open_trades(store_of(A), audit_key)] == [x1.trade_id, y1.trade_id, x2.trade_id]


def test_an_intent_settled_in_another_chain_is_final_everywhere(nodes, store_of, audit_key):
    """B took vault X over and settled A's intent in its own chain: C, the next owner, must not
    settle it again, nor may A when it comes back; a repeated request gets B's outcome."""
    x1, x2 = trade("vault-x", 1), trade("vault-x", 2)
    a, b = nodes[A], nodes[B]
    for req in (x1, x2):
        a.intent(req)
        a.signed(req, 1)
    [first, second] = load_adoptable_trades(store_of(B), audit_key, ["vault-x"])
    assert (first.trade_id, second.trade_id) == (x1.trade_id, x2.trade_id)
    b.outcome(x1, TradeStatus.EXPIRED, 1)  # B's settlement, in B's chain
    assert summary(load_adoptable_trades(store_of(C), audit_key, ["vault-x"])) == [(x2.trade_id, A, [1])]
    assert [r.trade_id for r in load_open_trades(store_of(A), audit_key)] == [x2.trade_id]
    for reader in (A, B, C):
        intent, known = lookup_trade(store_of(reader), audit_key, x1.trade_id)
        assert intent == dataclasses.replace(x1, reply_to=None)
        assert isinstance(known, TradeOutcome) and known.status is TradeStatus.EXPIRED and known.replayed


def test_a_trade_carried_on_by_a_second_owner_is_adopted_with_every_attempt(nodes, store_of, audit_key):
    """A signed attempt 1 and died; B settled it as expired and signed attempt 2, then died: C
    gets one record with both attempts, in order, so it settles the last one and never re-signs
    over a live one."""
    x1 = trade("vault-x", 1)
    a, b = nodes[A], nodes[B]
    a.intent(x1)
    a.signed(x1, 1)
    [adopted] = load_adoptable_trades(store_of(B), audit_key, ["vault-x"])
    b.failed(x1, 1)
    b.signed(x1, 2)
    assert summary(load_adoptable_trades(store_of(C), audit_key, ["vault-x"])) == [(x1.trade_id, A, [1, 2])]
    _, known = lookup_trade(store_of(C), audit_key, x1.trade_id)
    assert isinstance(known, TradeRecord) and [t.signature for t in known.attempts] == [
        f"sig-{x1.trade_id}-1", f"sig-{x1.trade_id}-2"
    ]
    # A, back from the dead, reads its own intent with B's attempt too: it would settle attempt 2.
    [own] = load_open_trades(store_of(A), audit_key)
    assert [t.number for t in own.attempts] == [1, 2]
    b.outcome(x1, TradeStatus.CONFIRMED, 2)
    assert load_adoptable_trades(store_of(C), audit_key, ["vault-x"]) == []
    assert load_open_trades(store_of(A), audit_key) == []


def test_one_process_store_reads_its_trades_as_before(audit_settings, data_dir, audit_key):
    """No chain configured: the default chain, the same open trades in log order, nothing to adopt."""
    node = Node(audit_settings, data_dir, "")
    x1, x2, x3 = trade("vault-x", 1), trade("vault-x", 2), trade("vault-y", 1)
    try:
        for req in (x1, x2, x3):
            node.intent(req)
        node.signed(x1, 1)
        node.failed(x1, 1)
        node.signed(x1, 2)
        node.signed(x2, 1)
        node.outcome(x2, TradeStatus.CONFIRMED, 1)
    finally:
        node.log.close()
    store = open_store(audit_settings, data_dir)
    try:
        assert summary(load_open_trades(store, audit_key)) == [(x1.trade_id, "default", [1, 2]), (x3.trade_id, "default", [])]
        assert load_adoptable_trades(store, audit_key, ["vault-x", "vault-y"]) == []
        _, known = lookup_trade(store, audit_key, x2.trade_id)
        assert isinstance(known, TradeOutcome) and known.status is TradeStatus.CONFIRMED
    finally:
        store.close()


def test_an_edited_entry_in_another_chain_is_refused_not_adopted(nodes, store_of, audit_key, chain_sql):
    x1 = trade("vault-x", 1)
    nodes[A].intent(x1)
    nodes[A].signed(x1, 1)
    chain_sql(A, "UPDATE {t} SET details = replace(details, 'sig-', 'evil-') WHERE sequence = 2")
    from xorj_actors.execution import LedgerError

    with pytest.raises(LedgerError, match="audit entry 2 of chain node-a .* does not verify"):
        load_adoptable_trades(store_of(B), audit_key, ["vault-x"])
