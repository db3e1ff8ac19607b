"""``[quotas.<endpoint>]``: the budget of every external endpoint the engine calls.

Each endpoint has a budget of ``requests`` per ``window_s``. The defaults are the published
limits of the free tiers (docs/QUOTAS.md): Jupiter 60 a minute per account, shared by all its
endpoints; Jito's block engine 1 a second per IP; an RPC plan a few hundred a second.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Endpoint", "EndpointBudget", "QuotaSettings"]


class Endpoint(enum.StrEnum):
    """Every external endpoint with a budget (the ``endpoint`` label of the quota metrics)."""

    RPC_SEND = "rpc_send"
    RPC_READ = "rpc_read"
    RPC_SIMULATE = "rpc_simulate"
    WS_SUBSCRIPTIONS = "ws_subscriptions"
    JUPITER_QUOTE = "jupiter_quote"
    JUPITER_SWAP_INSTRUCTIONS = "jupiter_swap_instructions"
    JUPITER_ORDER = "jupiter_order"
    JUPITER_EXECUTE = "jupiter_execute"
    JUPITER_PRICE = "jupiter_price"
    BLOCK_ENGINE = "block_engine"
    #: The extra send endpoints (``[execution] send_urls``), one bucket for all of them: a
    #: fan-out to n routes takes n turns.
    SEND_ROUTES = "send_routes"


#: Largest budget in one window: the used-in-window count keeps one timestamp per request.
MAX_REQUESTS = 1_000_000


@dataclass(frozen=True, slots=True)
class EndpointBudget:
    """One endpoint's budget and how its bucket reacts to a 429."""

    #: Requests allowed in any window of ``window_s`` seconds.
    requests: int = 60
    window_s: float = 60.0
    #: Requests that may go at once after an idle spell. The bucket refills at
    #: ``(requests - burst + 1) / window_s``, so no window of ``window_s`` (sliding, as Jupiter's
    #: and most providers' are) ever sees more than ``requests``. None: ``max(1, requests // 20)``.
    burst: int | None = None
    #: Another endpoint whose bucket this one draws from (a provider that counts several
    #: endpoints against one budget, as Jupiter does per account). Its own budget is then unused.
    share: str = ""
    #: Callers allowed to wait for this bucket at once; one more is refused (backpressure).
    max_waiting: int = 10_000
    #: A 429 multiplies the rate by this (multiplicative decrease) ...
    decrease: float = 0.5
    #: ... down to this fraction of the budget's rate, ...
    min_rate_fraction: float = 1 / 16
    #: ... and each success afterwards adds this fraction back (additive increase), up to 1.
    increase: float = 0.05
    #: Pause after a 429 without ``Retry-After`` (one with it pauses for what it says).
    pause_s: float = 1.0

    @property
    def effective_burst(self) -> int:
        """The burst used: the configured one, else 1/20 of the budget (at least 1)."""
        return self.burst if self.burst is not None else max(1, self.requests // 20)

    def validate(self) -> None:
        if not 1 <= self.requests <= MAX_REQUESTS:
            raise ValueError(f"requests: must be between 1 and {MAX_REQUESTS}")
        if not 0 < self.window_s <= 86_400:
            raise ValueError("window_s: must be in (0, 86400]")
        if self.burst is not None and not 1 <= self.burst <= self.requests:
            raise ValueError("burst: must be between 1 and requests")
        if self.share and self.share not in {e.value for e in Endpoint}:
            raise ValueError(f"share: unknown endpoint {self.share!r}")
        if self.max_waiting < 0:
            raise ValueError("max_waiting: must be >= 0")
        if not 0 < self.decrease < 1:
            raise ValueError("decrease: must be in (0, 1)")
        if not 0 < self.min_rate_fraction <= 1:
            raise ValueError("min_rate_fraction: must be in (0, 1]")
        if not 0 < self.increase <= 1:
            raise ValueError("increase: must be in (0, 1]")
        if not 0 <= self.pause_s <= 3600:
            raise ValueError("pause_s: must be in [0, 3600]")


def _jupiter(**kw: str) -> EndpointBudget:
    # Jupiter's rate limit (free tier: 60 a minute, 60-second sliding window) is one bucket per
    # account across all its endpoints: the others draw from jupiter_quote's.
    return EndpointBudget(requests=60, window_s=60.0, **kw)


def _rpc(requests: int) -> EndpointBudget:
    return EndpointBudget(requests=requests, window_s=1.0)


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    """``[quotas]``: one table per :class:`Endpoint`; a name not listed is refused."""

    rpc_send: EndpointBudget = field(default_factory=lambda: _rpc(50))
    rpc_read: EndpointBudget = field(default_factory=lambda: _rpc(100))
    rpc_simulate: EndpointBudget = field(default_factory=lambda: _rpc(50))
    ws_subscriptions: EndpointBudget = field(default_factory=lambda: _rpc(20))
    jupiter_quote: EndpointBudget = field(default_factory=_jupiter)
    jupiter_swap_instructions: EndpointBudget = field(default_factory=lambda: _jupiter(share="jupiter_quote"))
    # An Ultra plan with a limit of its own (one growing with executed volume): share = "".
    jupiter_order: EndpointBudget = field(default_factory=lambda: _jupiter(share="jupiter_quote"))
    jupiter_execute: EndpointBudget = field(default_factory=lambda: _jupiter(share="jupiter_quote"))
    jupiter_price: EndpointBudget = field(default_factory=lambda: _jupiter(share="jupiter_quote"))
    block_engine: EndpointBudget = field(default_factory=lambda: EndpointBudget(requests=1, window_s=1.0))
    send_routes: EndpointBudget = field(default_factory=lambda: _rpc(50))
    #: Apply the budgets to the in-process localnet's endpoints too (it has no provider budgets
    #: of its own: by default only real providers' endpoints are budgeted).
    on_localnet: bool = False

    def budget(self, endpoint: Endpoint | str) -> EndpointBudget:
        """The budget of ``endpoint``; a name that is no :class:`Endpoint` raises ValueError."""
        budget: EndpointBudget = getattr(self, Endpoint(endpoint).value)
        return budget

    def bucket_of(self, endpoint: Endpoint | str) -> Endpoint:
        """The endpoint whose bucket ``endpoint`` draws from (itself unless it shares)."""
        share = self.budget(endpoint).share
        return Endpoint(share) if share else Endpoint(endpoint)

    def validate(self) -> None:
        for name in (e.value for e in Endpoint):
            share = getattr(self, name).share
            if share == name:
                raise ValueError(f"{name}.share: an endpoint cannot share its own bucket")
            if share and getattr(self, share).share:
                raise ValueError(f"{name}.share: {share} shares a bucket itself; name the bucket's owner")
