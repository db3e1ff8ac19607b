"""The localnet's fee market: each landed transaction's compute-unit price, by the accounts it writes.

Feeds two answers in mainnet's shapes:

- Agave's ``getRecentPrioritizationFees``: for each of the last 150 slots, the minimum price of
  that slot's transactions, raised to the minimum price paid by the transactions writing each
  asked account (Agave's prioritization-fee cache: ``max(block minimum, account minima)``).
  A slot where nothing landed reports 0.
- Helius' ``getPriorityFeeEstimate`` with ``accountKeys``: per asked account, the levels' percentiles
  (Min 0, Low 25, Medium 50, High 75, VeryHigh 95, UnsafeMax 100) of the prices of the
  transactions that wrote it over ``lookbackSlots``; the busiest account sets each level.

Listens to the chain (on its thread), as the PubSub hub does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from solders.compute_budget import ID as COMPUTE_BUDGET_ID
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors.fees import PriorityLevel, percentile
from xorj_actors.localnet.chain import Landed

__all__ = ["FEE_SLOTS", "FeeMarket", "compute_unit_price", "writable_accounts"]

#: Slots Agave's prioritization-fee cache holds (and getRecentPrioritizationFees answers).
FEE_SLOTS = 150
_SET_COMPUTE_UNIT_PRICE = 3
_DEFAULT_LOOKBACK = 50
_OPTIONS = frozenset(
    {
        "transactionEncoding",
        "priorityLevel",
        "includeAllPriorityFeeLevels",
        "lookbackSlots",
        "includeVote",
        "recommended",
        "evaluateEmptySlotAsZero",
    }
)


def compute_unit_price(tx: VersionedTransaction) -> int:
    """The micro-lamports per unit ``tx`` bids (its last SetComputeUnitPrice, as the runtime
    reads it); 0 without one."""
    keys = tx.message.account_keys
    price = 0
    for ix in tx.message.instructions:
        data = bytes(ix.data)
        if keys[ix.program_id_index] == COMPUTE_BUDGET_ID and len(data) == 9 and data[0] == _SET_COMPUTE_UNIT_PRICE:
            price = int.from_bytes(data[1:], "little")
    return price


def writable_accounts(landed: Landed) -> frozenset[Pubkey]:
    """The accounts ``landed`` locked for writing: writable static keys (by the message header)
    and the writable accounts it loaded through lookup tables."""
    message = landed.tx.message
    header = message.header
    keys = message.account_keys
    signed = header.num_required_signatures
    writable = {
        key
        for i, key in enumerate(keys)
        if (i < signed - header.num_readonly_signed_accounts)
        or (signed <= i < len(keys) - header.num_readonly_unsigned_accounts)
    }
    return frozenset(writable | set(landed.loaded.writable))


_NONE: dict[int, int] = {}


class FeeMarket:
    """The prices of recently landed transactions, by slot and by written account."""

    def __init__(self, slot: int = 0) -> None:
        self._slot = slot
        #: (slot, price, written accounts) of each landed transaction, oldest first.
        self._landed: deque[tuple[int, int, frozenset[Pubkey]]] = deque()
        #: Per slot, oldest first: its block minimum and each written account's minimum; and per
        #: account, its minimum in each slot it was written (so a getRecentPrioritizationFees
        #: reads the asked accounts' few slots, not every slot or every transaction).
        self._minima: dict[int, tuple[int, dict[Pubkey, int]]] = {}
        self._by_account: dict[Pubkey, dict[int, int]] = {}
        #: The block minima's answer (no account asked), until a slot or a landing changes it.
        self._block_fees: list[dict[str, int]] | None = None

    # -- chain listener -----------------------------------------------------------------

    def on_slot(self, slot: int) -> None:
        self._slot = slot
        while self._landed and self._landed[0][0] <= slot - FEE_SLOTS:
            self._landed.popleft()
        while self._minima and (oldest := next(iter(self._minima))) <= slot - FEE_SLOTS:
            for key in self._minima.pop(oldest)[1]:
                slots = self._by_account[key]
                del slots[oldest]
                if not slots:
                    del self._by_account[key]
        self._block_fees = None

    def on_received(self, signature: Signature) -> None:
        return None

    def on_landed(self, landed: Landed) -> None:
        self._slot = max(self._slot, landed.slot)
        price, written = compute_unit_price(landed.tx), writable_accounts(landed)
        self._landed.append((landed.slot, price, written))
        block_min, account_min = self._minima.get(landed.slot, (price, {}))
        self._minima[landed.slot] = (min(block_min, price), account_min)
        for key in written:
            if price < account_min.get(key, price + 1):
                account_min[key] = price
                self._by_account.setdefault(key, {})[landed.slot] = price
        self._block_fees = None

    # -- answers --------------------------------------------------------------------------

    def recent_prioritization_fees(self, accounts: Sequence[Pubkey]) -> list[dict[str, int]]:
        """Agave's ``getRecentPrioritizationFees`` result for ``accounts`` (none: the block minima)."""
        first = max(self._slot - FEE_SLOTS + 1, 0)
        if self._block_fees is None:
            minima = self._minima
            self._block_fees = [
                {"slot": slot, "prioritizationFee": minima[slot][0] if slot in minima else 0}
                for slot in range(first, self._slot + 1)
            ]
        block_fees = self._block_fees
        # Each slot's fee: the most of its block minimum and each asked account's minimum there.
        raised: dict[int, int] = {}
        for key in frozenset(accounts):
            for slot, price in self._by_account.get(key, _NONE).items():
                if slot >= first and price > raised.get(slot, block_fees[slot - first]["prioritizationFee"]):
                    raised[slot] = price
        if not raised:
            return list(block_fees)
        fees = list(block_fees)  # the cached entries are shared, never changed: raised ones are new
        for slot, price in raised.items():
            fees[slot - first] = {"slot": slot, "prioritizationFee": price}
        return fees

    def priority_fee_estimate(self, request: Any) -> dict[str, Any]:
        """Helius' ``getPriorityFeeEstimate`` result for one request object; :class:`ValueError`
        names what is wrong with it."""
        accounts, options = _estimate_request(request)
        lookback = options.get("lookbackSlots", _DEFAULT_LOOKBACK)
        first = self._slot - lookback + 1
        prices: dict[Pubkey, list[int]] = {key: [] for key in accounts}
        for slot, price, written in self._landed:
            if slot >= first:
                for key in written & prices.keys():
                    prices[key].append(price)
        levels = {
            level: max((percentile(paid, level.percentile) for paid in prices.values()), default=0)
            for level in PriorityLevel
        }
        result: dict[str, Any] = {}
        if options.get("includeAllPriorityFeeLevels"):
            result["priorityFeeLevels"] = {level.key: float(fee) for level, fee in levels.items()}
        if "priorityLevel" in options or options.get("recommended") or not result:
            # Without a level Helius answers Medium; `recommended` is its median.
            level = PriorityLevel(options.get("priorityLevel", PriorityLevel.MEDIUM.value))
            result["priorityFeeEstimate"] = float(levels[level])
        return result


def _estimate_request(request: Any) -> tuple[list[Pubkey], dict[str, Any]]:
    """The accounts and options of a ``getPriorityFeeEstimate`` request object, checked."""
    if not isinstance(request, dict):
        raise ValueError("expected an object with accountKeys and options")
    if "transaction" in request:
        raise ValueError("the localnet estimates from accountKeys only (pass the transaction's writable accounts)")
    raw = request.get("accountKeys")
    if not isinstance(raw, list) or not raw or not all(isinstance(k, str) for k in raw):
        raise ValueError("accountKeys must be a non-empty array of base-58 strings")
    try:
        accounts = [Pubkey.from_string(k) for k in raw]
    except ValueError:
        raise ValueError("accountKeys: not a valid public key") from None
    options = request.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError("options must be an object")
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}")
    level = options.get("priorityLevel")
    if level is not None and level not in {lv.value for lv in PriorityLevel}:
        raise ValueError(f"priorityLevel must be one of {', '.join(lv.value for lv in PriorityLevel)}")
    lookback = options.get("lookbackSlots", _DEFAULT_LOOKBACK)
    if isinstance(lookback, bool) or not isinstance(lookback, int) or not 1 <= lookback <= FEE_SLOTS:
        raise ValueError(f"lookbackSlots must be an integer between 1 and {FEE_SLOTS}")
    for flag in ("includeAllPriorityFeeLevels", "includeVote", "recommended", "evaluateEmptySlotAsZero"):
        if flag in options and not isinstance(options[flag], bool):
            raise ValueError(f"{flag} must be true or false")
    if options.get("recommended") and (level is not None or options.get("includeAllPriorityFeeLevels")):
        raise ValueError("recommended cannot be used with priorityLevel or includeAllPriorityFeeLevels")
    return accounts, options
