"""Seeded random-walk prices and constant-product routing for the localnet's quote service.

Each volatile token's USD price follows a geometric random walk, one step per ``step_s`` of
market time, with its configured annualised volatility. Steps are drawn one at a time from a
per-token generator seeded by ``(seed, mint)``, so the price after ``k`` steps is the same for
the same seed however often it was read, until a volatility spike is switched.

Every volatile token trades against the stablecoin in a virtual constant-product pool holding
``depth_usd`` on each side at the current mid price; a trade between two volatile tokens is
routed through the stablecoin (two hops). The pools are rebuilt from the mid price for every
quote: the market maker quotes a curve, it does not keep one.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Literal

from xorj_actors.localnet.genesis import TokenSpec

__all__ = [
    "Hop",
    "NoRoute",
    "PriceWalk",
    "Route",
    "SECONDS_PER_YEAR",
    "SteppedClock",
    "route",
]

SECONDS_PER_YEAR = 365.0 * 24 * 3600
SwapMode = Literal["ExactIn", "ExactOut"]


class SteppedClock:
    """A step counter driven by a monotonic clock, or only by :meth:`advance` when manual."""

    def __init__(self, step_s: float, manual: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self._step_s = step_s
        self._manual = manual
        self._clock = clock
        self._start = clock()
        self._offset = 0

    def index(self) -> int:
        """The current step: whole steps elapsed since creation plus those advanced by hand."""
        elapsed = 0 if self._manual else int((self._clock() - self._start) // self._step_s)
        return elapsed + self._offset

    def advance(self, steps: int = 1) -> int:
        """Move ``steps`` forward (in either mode) and return the new index."""
        if steps < 0:
            raise ValueError("steps: must be >= 0")
        self._offset += steps
        return self.index()


class _Walk:
    __slots__ = ("log_price", "rng", "sigma", "step")

    def __init__(self, token: TokenSpec, seed: int, dt_years: float) -> None:
        self.log_price = math.log(token.price_usd)
        self.rng = random.Random(f"{seed}:{token.mint}")
        self.sigma = token.volatility * math.sqrt(dt_years)
        self.step = 0

    def catch_up(self, step: int, factor: float) -> None:
        while self.step < step:
            self.move(self.rng.gauss(0.0, 1.0), factor)

    def move(self, shock: float, factor: float) -> None:
        """One step by ``shock`` standard deviations."""
        sigma = self.sigma * factor
        # Ito drift keeps the walk a martingale in price, not just in log price.
        self.log_price += sigma * shock - 0.5 * sigma * sigma
        self.step += 1


class PriceWalk:
    """Mid prices in USD for the localnet's tokens, thread-safe.

    Args:
        tokens: the genesis tokens; stable ones (and any with zero volatility) never move.
        seed: seed of every walk.
        step_s: market time of one step (the walk's dt).
        manual: steps only on :meth:`advance`; otherwise one step per ``step_s`` of wall time.
        spike_multiplier: volatility factor while :meth:`set_volatility_spike` is on.
    """

    def __init__(
        self,
        tokens: Iterable[TokenSpec],
        seed: int,
        step_s: float,
        manual: bool,
        spike_multiplier: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        dt_years = step_s / SECONDS_PER_YEAR
        self._walks = {str(t.mint): _Walk(t, seed, dt_years) for t in tokens}
        self._clock = SteppedClock(step_s, manual, clock)
        self._spike_multiplier = spike_multiplier
        self._factor = 1.0
        #: mint -> the mint whose shocks it takes (a co-moving group's first mint), see :meth:`co_move`.
        self._leader: dict[str, str] = {}
        self._lock = threading.Lock()

    def _catch_up(self) -> int:
        step = self._clock.index()
        if not self._leader:
            for walk in self._walks.values():
                walk.catch_up(step, self._factor)
            return step
        walks = self._walks
        while any(w.step < step for w in walks.values()):
            # Every walk draws its own shock (its sequence stays the seed's); a led one moves by its leader's.
            shocks = {m: w.rng.gauss(0.0, 1.0) for m, w in walks.items()}
            for m, w in walks.items():
                w.move(shocks[self._leader.get(m, m)], self._factor)
        return step

    def co_move(self, groups: Iterable[Iterable[str]]) -> tuple[tuple[str, ...], ...]:
        """From the next step on, the mints of each group move by the same shocks (correlation 1
        of log returns, each at its own volatility); an empty list ends every group."""
        leader: dict[str, str] = {}
        out = []
        for group in groups:
            members = tuple(sorted(set(group)))
            unknown = [m for m in members if m not in self._walks or m in leader]
            if unknown or len(members) < 2:
                raise ValueError(f"groups: {members} needs two or more known mints, each in one group")
            leader.update((m, members[0]) for m in members)
            out.append(members)
        with self._lock:
            self._catch_up()  # steps already due move as they did
            self._leader = leader
        return tuple(out)

    @property
    def step(self) -> int:
        """The current step of the walks."""
        with self._lock:
            return self._catch_up()

    @property
    def spike(self) -> bool:
        """Whether a volatility spike is on."""
        return self._factor != 1.0

    def price(self, mint: str) -> float:
        """The current mid price of ``mint`` in USD; ``KeyError`` if unknown."""
        with self._lock:
            self._catch_up()
            return math.exp(self._walks[mint].log_price)

    def prices(self) -> dict[str, float]:
        """Every token's current mid price, by mint, read at one instant."""
        with self._lock:
            self._catch_up()
            return {mint: math.exp(w.log_price) for mint, w in self._walks.items()}

    def advance(self, steps: int = 1) -> int:
        """Step the walks ``steps`` forward now (the manual clock's only driver)."""
        with self._lock:
            self._clock.advance(steps)
            return self._catch_up()

    def set_volatility_spike(self, on: bool) -> None:
        """Switch the volatility spike: steps from now on move ``spike_multiplier`` times wider."""
        with self._lock:
            # Steps already due were taken at the old volatility.
            self._catch_up()
            self._factor = self._spike_multiplier if on else 1.0


class NoRoute(ValueError):
    """No route for this amount (too small to give anything, or beyond the pool's depth)."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One leg of a route through a virtual pool, amounts in base units."""

    input: TokenSpec
    output: TokenSpec
    in_amount: int
    out_amount: int


@dataclass(frozen=True, slots=True)
class Route:
    """A priced route: total amounts in base units, hops, and price impact (a fraction)."""

    in_amount: int
    out_amount: int
    hops: tuple[Hop, ...]
    price_impact: Decimal


def _reserve(token: TokenSpec, depth_usd: float, price: float) -> Decimal:
    return Decimal(depth_usd) / Decimal(price) * (Decimal(10) ** token.decimals)


def _pool(a: TokenSpec, b: TokenSpec, prices: dict[str, float]) -> tuple[Decimal, Decimal]:
    depth = (b if a.stable else a).depth_usd
    return _reserve(a, depth, prices[str(a.mint)]), _reserve(b, depth, prices[str(b.mint)])


def _hop_out(r_in: Decimal, r_out: Decimal, amount: int) -> int:
    return int((r_out * amount / (r_in + amount)).to_integral_value(ROUND_FLOOR))


def _hop_in(r_in: Decimal, r_out: Decimal, amount: int) -> int:
    if amount >= r_out:
        raise NoRoute("amount exceeds the pool's depth")
    return int((r_in * amount / (r_out - amount)).to_integral_value(ROUND_CEILING))


def _value(token: TokenSpec, amount: int, prices: dict[str, float]) -> Decimal:
    return Decimal(amount) * Decimal(prices[str(token.mint)]) / (Decimal(10) ** token.decimals)


def route(
    input_token: TokenSpec,
    output_token: TokenSpec,
    stable: TokenSpec,
    amount: int,
    mode: SwapMode,
    prices: dict[str, float],
) -> Route:
    """Price a swap of ``amount`` base units (of the input for ExactIn, the output for ExactOut).

    Raises:
        NoRoute: the amount gives nothing, or exceeds the pools' depth.
    """
    path = [input_token, output_token]
    if not (input_token.stable or output_token.stable):
        path.insert(1, stable)
    pairs = list(zip(path, path[1:]))
    with localcontext() as ctx:
        ctx.prec = 50
        amounts = [0] * len(path)
        if mode == "ExactIn":
            amounts[0] = amount
            for i, (a, b) in enumerate(pairs):
                amounts[i + 1] = _hop_out(*_pool(a, b, prices), amounts[i])
        else:
            amounts[-1] = amount
            for i in reversed(range(len(pairs))):
                amounts[i] = _hop_in(*_pool(*pairs[i], prices), amounts[i + 1])
        if min(amounts) <= 0:
            raise NoRoute("amount too small to route")
        worth_in = _value(input_token, amounts[0], prices)
        worth_out = _value(output_token, amounts[-1], prices)
        impact = (1 - worth_out / worth_in).quantize(Decimal("1e-12"))
    hops = tuple(Hop(a, b, amounts[i], amounts[i + 1]) for i, (a, b) in enumerate(pairs))
    return Route(amounts[0], amounts[-1], hops, max(impact, Decimal(0)))
