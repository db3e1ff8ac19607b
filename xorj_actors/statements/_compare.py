"""The comparison rules of a statement reconciliation: pure, no I/O, no clock.

For one vault: the balances it holds now (one read, at one slot) must equal its opening balances
plus the changes of every transaction of its ledger that landed after the opening and by that
slot, each change read from the chain's own record of the transaction (``getTransaction`` meta:
``pre/postTokenBalances`` for tokens, ``pre/postBalances`` for the authority's lamports, so fees,
tips and rent are in the SOL figure). And every confirmed trade of the ledger must be on the chain,
landed without error, with the amounts the ledger states. One base unit off is a mismatch.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from xorj_actors.programs import swap_change

__all__ = [
    "LAMPORTS",
    "Cause",
    "ChainTx",
    "LedgerTrade",
    "Mismatch",
    "Opening",
    "VaultStatement",
    "compare_vault",
]

#: The asset key of the vault authority's native SOL balance (lamports); tokens are keyed by mint.
LAMPORTS = "lamports"


class Cause(enum.StrEnum):
    """Why a figure does not match."""

    #: The balance moved by more than the ledger explains: a transaction the ledger lacks moved it.
    UNLEDGERED = "trade_the_ledger_lacks"
    #: A confirmed trade of the ledger is not on the chain (or landed with an error).
    NOT_ON_CHAIN = "ledger_trade_the_chain_lacks"
    #: The ledger's amount for a trade differs from the chain's record of it.
    AMOUNT_DIFFERS = "amount_differs"
    #: The ledger's final outcome is not ``confirmed`` (failed, expired, ...), yet one of the
    #: trade's transactions landed without error and moved the vault's funds.
    OUTCOME_DIFFERS = "outcome_differs"


@dataclass(frozen=True, slots=True)
class Opening:
    """The audited opening balances of a vault, read at ``slot``: asset -> base units."""

    slot: int
    balances: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class LedgerTrade:
    """What the ledger holds about one trade.

    ``signatures``: every transaction id it signed and recorded (each attempt's); ``status`` is
    the outcome's (``confirmed``, ``failed``, ...), empty while the trade is open.
    """

    trade_id: str
    input_mint: str
    output_mint: str
    signatures: tuple[str, ...] = ()
    status: str = ""
    signature: str | None = None
    in_amount: int = 0
    out_amount: int = 0
    slippage_bps: int = 0
    #: signed attempts whose transaction id is not recorded (Ultra, maker-paid: known from
    #: ``/execute``'s answer); a trade with an outcome may keep them (never landed).
    unknown_ids: int = 0
    #: Unix time of the trade's intent entry (0: unknown).
    opened_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ChainTx:
    """The chain's record of one transaction, as it touched the vault: ``found`` False when the
    chain has no such transaction; ``deltas``: asset -> base units gained (negative: lost)."""

    signature: str
    found: bool
    slot: int = 0
    err: str | None = None
    deltas: Mapping[str, int] = field(default_factory=dict)
    #: mints the vault held an account of before or after (in ``pre/postTokenBalances``).
    token_mints: frozenset[str] = frozenset()
    #: the network fee the vault authority paid (0 unless it was the fee payer).
    fee_paid: int = 0

    def swap_change(self, mint: str) -> int:
        """What a trade moved of ``mint`` (:func:`xorj_actors.programs.swap_change`): native SOL
        wrapped and closed within the transaction is the authority's lamports, less its fee."""
        held = mint in self.token_mints or mint in self.deltas
        change = self.deltas.get(mint, 0)
        return swap_change(mint, 0 if held else None, change if held else None, self.deltas.get(LAMPORTS), self.fee_paid)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One figure that does not match: ``actual - expected == difference != 0``."""

    vault_id: str
    asset: str
    cause: Cause
    expected: int
    actual: int
    trade_id: str | None = None
    signature: str | None = None
    detail: str = ""

    @property
    def difference(self) -> int:
        return self.actual - self.expected

    def as_dict(self) -> dict[str, object]:
        return {
            "vault_id": self.vault_id, "asset": self.asset, "cause": self.cause.value,
            "expected": self.expected, "actual": self.actual, "difference": self.difference,
            "trade_id": self.trade_id, "signature": self.signature, "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class VaultStatement:
    """The reconciliation of one vault at ``slot``: ``expected`` and ``actual`` per asset."""

    vault_id: str
    slot: int
    opening_slot: int
    expected: Mapping[str, int]
    actual: Mapping[str, int]
    transactions: int
    mismatches: tuple[Mismatch, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "vault_id": self.vault_id, "slot": self.slot, "opening_slot": self.opening_slot,
            "expected": dict(sorted(self.expected.items())), "actual": dict(sorted(self.actual.items())),
            "transactions": self.transactions, "mismatches": [m.as_dict() for m in self.mismatches],
        }


def compare_vault(
    vault_id: str,
    opening: Opening,
    actual: Mapping[str, int],
    slot: int,
    trades: Iterable[LedgerTrade],
    chain: Mapping[str, ChainTx],
    unledgered: Iterable[str] = (),
) -> VaultStatement:
    """Reconcile one vault (see the module docstring).

    Args:
        vault_id: the vault.
        opening: its audited opening balances.
        actual: asset -> base units held now, all read at ``slot``.
        slot: the slot of ``actual``.
        trades: every trade of the ledger for this vault.
        chain: signature -> the chain's record, for every signature of ``trades``.
        unledgered: signatures the chain lists for the vault's accounts that no ledger trade
            holds (empty when the node cannot list them): named in the cause of a balance gap.

    Returns:
        The statement; ``mismatches`` is empty when everything matches to the base unit.
    """
    trades = list(trades)
    expected = dict(opening.balances)
    counted: set[str] = set()
    mismatches: list[Mismatch] = []
    for trade in trades:
        for sig in dict.fromkeys((*trade.signatures, *((trade.signature,) if trade.signature else ()))):
            tx = chain.get(sig)
            if tx is None or not tx.found or sig in counted or not opening.slot < tx.slot <= slot:
                continue
            counted.add(sig)
            for asset, delta in tx.deltas.items():
                expected[asset] = expected.get(asset, 0) + delta
        mismatches.extend(_check_trade(vault_id, trade, chain, opening.slot))
    for asset in sorted(set(expected) | set(actual)):
        want, have = expected.get(asset, 0), actual.get(asset, 0)
        if want != have:
            names = ", ".join(sorted(unledgered))
            detail = (
                f"the chain lists transactions the ledger lacks: {names}" if names
                else "unexplained delta: something other than the ledger's trades moved the funds"
            )
            mismatches.append(Mismatch(vault_id, asset, Cause.UNLEDGERED, want, have, detail=detail))
    return VaultStatement(
        vault_id=vault_id, slot=slot, opening_slot=opening.slot, expected=expected, actual=dict(actual),
        transactions=len(counted), mismatches=tuple(mismatches),
    )


def _check_trade(vault_id: str, trade: LedgerTrade, chain: Mapping[str, ChainTx], opening_slot: int) -> list[Mismatch]:
    """A confirmed trade must be on the chain, without error, debiting exactly ``in_amount`` and
    crediting at least the quote less its slippage limit (ExactIn: the output may beat the quote).
    One that landed by the opening is in the opening balances (and may have moved accounts a key
    rotation since closed): the statement starts after it."""
    if not trade.status:
        return []  # open: the run defers the vault
    if trade.status != "confirmed":
        return _check_unconfirmed(vault_id, trade, chain, opening_slot)
    sig = trade.signature or ""
    tx = chain.get(sig)

    def mismatch(asset: str, cause: Cause, expected: int, actual: int, detail: str) -> Mismatch:
        return Mismatch(vault_id, asset, cause, expected, actual, trade.trade_id, sig or None, detail)

    if tx is None or not tx.found:
        return [mismatch(trade.input_mint, Cause.NOT_ON_CHAIN, -trade.in_amount, 0,
                         "the ledger's confirmed trade is not on the chain")]
    if tx.slot <= opening_slot:
        return []
    if tx.err is not None:
        return [mismatch(trade.input_mint, Cause.NOT_ON_CHAIN, -trade.in_amount, tx.swap_change(trade.input_mint),
                         f"the ledger says confirmed; the chain's transaction failed: {tx.err}")]
    out: list[Mismatch] = []
    debit = tx.swap_change(trade.input_mint)
    if debit != -trade.in_amount:
        out.append(mismatch(trade.input_mint, Cause.AMOUNT_DIFFERS, -trade.in_amount, debit,
                            "the ledger's in_amount differs from the chain's debit"))
    credit = tx.swap_change(trade.output_mint)
    floor = trade.out_amount * (10_000 - trade.slippage_bps) // 10_000
    if credit < floor:
        out.append(mismatch(trade.output_mint, Cause.AMOUNT_DIFFERS, trade.out_amount, credit,
                            f"the chain credited less than the ledger's out_amount less {trade.slippage_bps} bps"))
    return out


def _check_unconfirmed(vault_id: str, trade: LedgerTrade, chain: Mapping[str, ChainTx], opening_slot: int) -> list[Mismatch]:
    """A trade the ledger closed as not confirmed must have no transaction that landed without
    error and moved the vault's funds: one that did is the outcome the ledger got wrong."""
    for sig in dict.fromkeys((*trade.signatures, *((trade.signature,) if trade.signature else ()))):
        tx = chain.get(sig)
        if tx is None or not tx.found or tx.err is not None or tx.slot <= opening_slot:
            continue
        debit, credit = tx.swap_change(trade.input_mint), tx.swap_change(trade.output_mint)
        if debit or credit:
            return [Mismatch(vault_id, trade.input_mint, Cause.OUTCOME_DIFFERS, 0, debit, trade.trade_id, sig,
                             f"the ledger says {trade.status}; the chain's transaction landed "
                             f"(debit {debit}, credit {credit} of {trade.output_mint})")]
    return []
