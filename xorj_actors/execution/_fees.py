"""The priority fee of one attempt: scoped to the accounts the route writes, per value tier,
raised after each certain expiry up to the cap (``[execution.fees]``, docs/FEES.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from solders.instruction import Instruction
from solders.pubkey import Pubkey

from xorj_actors.execution._errors import ErrorClass, TradeError, classify_exception
from xorj_actors.fees import MAX_FEE_ACCOUNTS, FeeClient, FeePolicy, FeeSettings, FeeThrottled, FeeUnavailable
from xorj_actors.quotas import QuotaError, Quotas

__all__ = ["PriorityFees", "writable_accounts"]


def writable_accounts(instructions: Iterable[Instruction], exclude: Iterable[Pubkey] = ()) -> list[Pubkey]:
    """The accounts the instructions write (the contended pools and markets among them), once
    each, in order, at most the provider's limit; ``exclude`` (the vault's own) left out."""
    skip = set(exclude)
    seen: dict[Pubkey, None] = {}
    for ix in instructions:
        for meta in ix.accounts:
            if meta.is_writable and meta.pubkey not in skip:
                seen.setdefault(meta.pubkey, None)
    return list(seen)[:MAX_FEE_ACCOUNTS]


class PriorityFees:
    """Prices attempts from the fee provider, on the executor's loop."""

    def __init__(self, settings: FeeSettings, rpc_url: str, quotas: Quotas | None = None) -> None:
        self.settings = settings
        self.quotas = quotas
        self.policy = FeePolicy(settings)
        self.rpc_url = rpc_url
        self.client: FeeClient | None = None

    async def open(self, session: aiohttp.ClientSession) -> None:
        """Ask over ``session`` (the chain client's, closed by it): each request has its own timeout."""
        self.client = FeeClient(self.settings, self.rpc_url, session, quotas=self.quotas)

    async def close(self) -> None:
        self.client = None

    async def price(self, value_usd: float, accounts: list[Pubkey], attempt_no: int) -> tuple[int, Mapping[str, Any]]:
        """Micro-lamports per compute unit for attempt ``attempt_no`` (1 + the certain expiries
        before it), and the figures the signed record keeps. A provider failure is retried as a
        network failure: a trade sent without a fitting price would not land in congestion."""
        assert self.client is not None, "PriorityFees.open() first"
        tier = self.policy.tier_for(value_usd)
        if not accounts:
            return 0, {"fee_tier_usd": tier.min_value_usd, "fee_escalation": attempt_no, "fee_accounts": 0}
        try:
            sample = await self.client.sample(accounts)
            price = self.policy.price_for(tier, attempt_no, sample)
        except FeeThrottled as exc:
            raise TradeError(ErrorClass.RATE_LIMITED, f"priority fee provider throttled: {exc}") from exc
        except (FeeUnavailable, ValueError) as exc:
            raise TradeError(ErrorClass.NETWORK, f"priority fee unavailable: {exc}") from exc
        except QuotaError as exc:  # no turn in the rpc_read budget: a budget, not the network
            raise classify_exception(exc) from exc
        return price, {
            "fee_tier_usd": tier.min_value_usd, "fee_escalation": attempt_no, "fee_accounts": len(accounts),
            "fee_provider": self.settings.provider.value,
        }
