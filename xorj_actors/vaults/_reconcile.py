"""Reconciliation: from a vault's holdings and a target allocation to an ordered plan of trades.

Pure: no I/O, no clock, no randomness. The same inputs give the same plan, trade ids included.
Amounts are integers in base units, always rounded down; USD values are computed exactly
(``Fraction`` of the float prices) and rounded to float only for reporting. The algorithm and
every rule are described in docs/RECONCILIATION.md.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from fractions import Fraction

from supervisors import Message
from xorj_actors.correlation import ClusterLimits, fit_buys, share_room
from xorj_actors.vaults.settings import VaultSettings

__all__ = [
    "PLAN_REFUSALS",
    "PlannedTrade",
    "SkipReason",
    "Skipped",
    "TradePlan",
    "plan_trades",
]

_U64_MAX = 2**64 - 1
_BPS = 10_000
#: The quantitative engine's weights sum to 1 within this (docs/QUANT_API.md).
_WEIGHT_TOLERANCE = Fraction(1, 10**6)
_MAX_DECIMALS = 18


class SkipReason(str, enum.Enum):
    """Why something was not traded. Those in :data:`PLAN_REFUSALS` refuse the whole plan."""

    MISSING_PRICE = "missing_price"
    BAD_PRICE = "bad_price"
    MISSING_DECIMALS = "missing_decimals"
    BAD_HOLDING = "bad_holding"
    BAD_TARGET = "bad_target"
    BAD_POSITION_FACTOR = "bad_position_factor"
    POSITION_FACTOR_ZERO = "position_factor_zero"
    DUST = "dust"
    OVERSIZE = "oversize"
    SPLIT_LIMIT = "split_limit"
    CONCENTRATION_CAP = "concentration_cap"
    INSUFFICIENT_STABLE = "insufficient_stable"
    #: A buy cut (or refused: cut to 0) so a cluster of correlated tokens stays within
    #: ``[correlation] per_vault_max_share`` of the vault.
    CORRELATED_EXPOSURE = "correlated_exposure"
    #: A buy cut so a cluster stays within ``[correlation] global_max_usd`` across all vaults.
    CORRELATED_EXPOSURE_GLOBAL = "correlated_exposure_global"


#: Reasons that refuse the whole plan: no trade is made on inputs that cannot be trusted.
PLAN_REFUSALS: frozenset[SkipReason] = frozenset(
    {
        SkipReason.MISSING_PRICE,
        SkipReason.BAD_PRICE,
        SkipReason.MISSING_DECIMALS,
        SkipReason.BAD_HOLDING,
        SkipReason.BAD_TARGET,
        SkipReason.BAD_POSITION_FACTOR,
        SkipReason.POSITION_FACTOR_ZERO,
    }
)


class PlannedTrade(Message):
    """One ExactIn swap of ``amount_in`` base units of ``input_mint`` into ``output_mint``.

    ``value_usd`` is ``amount_in`` at the reference prices the plan used. ``reduces_exposure``
    is true for sells (volatile -> stable), which may still run in a reduce-only mode.
    """

    trade_id: str
    vault_id: str
    #: The plan's round key; with ``index`` it makes ``trade_id`` (``vault:round:index``).
    round_key: str
    input_mint: str
    output_mint: str
    amount_in: int
    value_usd: float
    reduces_exposure: bool
    index: int


class Skipped(Message):
    """Something the plan did not do: a refusal of the whole plan, or a trade (part) not made."""

    reason: SkipReason
    #: The mint concerned; empty when the reason is not about one mint.
    mint: str = ""
    #: USD value not traded (0.0 when not applicable).
    value_usd: float = 0.0
    detail: str = ""


class TradePlan(Message):
    """The outcome of :func:`plan_trades`.

    Attributes:
        trades: sells first, then buys; ``trades[i].index == i``.
        skipped: what was not done and why.
        refused: the whole plan was refused (``trades`` is empty; ``skipped`` says why).
        value_usd: the vault's value at the reference prices (0.0 when refused).
        stable_available: stablecoin base units the buys may spend: the balance plus the sells'
            expected proceeds less ``proceeds_haircut_bps``.
        stable_for_buys: stablecoin base units the buys spend (never above ``stable_available``).
    """

    vault_id: str
    round_key: str
    trades: tuple[PlannedTrade, ...]
    skipped: tuple[Skipped, ...]
    refused: bool
    value_usd: float
    stable_available: int
    stable_for_buys: int


class _Book:
    """Exact prices and scales of the mints a plan touches."""

    __slots__ = ("price", "scale")

    def __init__(self) -> None:
        self.price: dict[str, Fraction] = {}
        self.scale: dict[str, int] = {}

    def value(self, mint: str, units: int) -> Fraction:
        return units * self.price[mint] / self.scale[mint]

    def units(self, mint: str, usd: Fraction) -> int:
        """Base units of ``mint`` worth ``usd``, rounded down."""
        return math.floor(usd * self.scale[mint] / self.price[mint])


def _check_id(name: str, value: str) -> None:
    # Trade ids are "vault:round:index"; a colon inside a part would make two trades' ids collide.
    if not value or ":" in value:
        raise ValueError(f"{name}: must be non-empty and contain no ':', got {value!r}")


def exact(value: float) -> Fraction:
    """The decimal a float was written as (``0.6`` is 3/5, not the binary double nearest it).

    Weights and prices arrive as decimal text (JSON, ``/price/v3``); planning on the binary
    expansion would turn a 60 % target of 10,000 USDC into 5,999.999999.
    """
    return Fraction(repr(float(value)))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def plan_trades(
    holdings: Mapping[str, int],
    prices: Mapping[str, float],
    decimals: Mapping[str, int],
    stable_mint: str,
    target: Mapping[str, float],
    settings: VaultSettings,
    position_factor: float,
    vault_id: str,
    round_key: str | int,
    correlation: ClusterLimits | None = None,
) -> TradePlan:
    """Plan the trades that move ``holdings`` to ``target``, within ``settings``.

    Args:
        holdings: base units per mint, read from the chain (zero balances may be included).
        prices: reference USD price per mint (the ``/price/v3`` source).
        decimals: decimals per mint.
        stable_mint: the stablecoin every trade goes through.
        target: weights per mint (a share of the vault's value), summing to 1.
        settings: the ``[vaults]`` limits.
        position_factor: the kill switch's position-limit factor in [0, 1]; scales every trade.
        vault_id: the vault; part of every trade id.
        round_key: the round; part of every trade id (a re-plan in the same round needs a new key).
        correlation: the correlated-exposure limits (clusters, share, engine-wide room); None: none.

    Returns:
        The plan. Bad data (a missing or non-positive price, unknown decimals, a negative or
        non-integer balance, weights that are not a distribution, a factor outside [0, 1] or 0)
        refuses the whole plan: ``refused`` is true, no trades, ``skipped`` names every problem.

    Raises:
        ValueError: ``vault_id`` or ``round_key`` is empty or contains ``':'`` (a caller's bug).
    """
    key = str(round_key)
    _check_id("vault_id", vault_id)
    _check_id("round_key", key)

    def refuse(problems: list[Skipped]) -> TradePlan:
        return TradePlan(
            vault_id=vault_id,
            round_key=key,
            trades=(),
            skipped=tuple(problems),
            refused=True,
            value_usd=0.0,
            stable_available=0,
            stable_for_buys=0,
        )

    problems: list[Skipped] = []
    held: dict[str, int] = {}
    for mint, units in holdings.items():
        if type(units) is not int or not 0 <= units <= _U64_MAX:
            problems.append(Skipped(SkipReason.BAD_HOLDING, mint, 0.0, f"balance {units!r} is not a u64 amount"))
        elif units > 0:
            held[mint] = units
    weights: dict[str, float] = {}
    for mint, weight in target.items():
        if not _is_number(weight) or not math.isfinite(weight) or not 0 <= weight <= 1:
            problems.append(Skipped(SkipReason.BAD_TARGET, mint, 0.0, f"weight {weight!r} is not in [0, 1]"))
        elif weight > 0:
            weights[mint] = float(weight)
    if not problems:
        # In decimal, as the weights were written: 0.333333 * 3 is within a millionth of 1.
        total = sum((exact(w) for w in weights.values()), Fraction(0))
        if abs(total - 1) > _WEIGHT_TOLERANCE:
            problems.append(Skipped(SkipReason.BAD_TARGET, "", 0.0, f"weights sum to {float(total)!r}, not 1"))
    if not _is_number(position_factor) or not math.isfinite(position_factor) or not 0 <= position_factor <= 1:
        problems.append(
            Skipped(SkipReason.BAD_POSITION_FACTOR, "", 0.0, f"position factor {position_factor!r} is not in [0, 1]")
        )
    if problems:
        return refuse(problems)
    if not held:
        return TradePlan(
            vault_id=vault_id,
            round_key=key,
            trades=(),
            skipped=(),
            refused=False,
            value_usd=0.0,
            stable_available=0,
            stable_for_buys=0,
        )
    if position_factor == 0:
        return refuse([Skipped(SkipReason.POSITION_FACTOR_ZERO, "", 0.0, "position factor is 0: no trading")])

    book = _Book()
    for mint in sorted(set(held) | set(weights) | {stable_mint}):
        price = prices.get(mint)
        if price is None:
            problems.append(Skipped(SkipReason.MISSING_PRICE, mint, 0.0, "no reference price"))
        elif not _is_number(price) or not math.isfinite(price) or price <= 0:
            problems.append(Skipped(SkipReason.BAD_PRICE, mint, 0.0, f"reference price {price!r} is not > 0"))
        else:
            book.price[mint] = exact(price)
        places = decimals.get(mint)
        if type(places) is not int or not 0 <= places <= _MAX_DECIMALS:
            problems.append(Skipped(SkipReason.MISSING_DECIMALS, mint, 0.0, f"decimals {places!r} unknown or invalid"))
        else:
            book.scale[mint] = 10**places
    if problems:
        return refuse(problems)

    planner = _Planner(book, settings, exact(position_factor), stable_mint, vault_id, key)
    planner.correlation = correlation
    return planner.plan(held, weights)


class _Planner:
    """One plan's working state: the skips it records and the sizing rules."""

    def __init__(
        self, book: _Book, settings: VaultSettings, factor: Fraction, stable: str, vault_id: str, key: str
    ) -> None:
        self.book = book
        self.settings = settings
        self.factor = factor
        self.stable = stable
        self.vault_id = vault_id
        self.key = key
        self.skipped: list[Skipped] = []
        self.min_usd = exact(settings.min_trade_usd)
        self.max_usd = exact(settings.max_trade_usd)
        self.correlation: ClusterLimits | None = None

    def skip(self, reason: SkipReason, mint: str, usd: Fraction, detail: str) -> None:
        self.skipped.append(Skipped(reason, mint, float(usd), detail))

    def plan(self, held: dict[str, int], weights: dict[str, float]) -> TradePlan:
        book, stable = self.book, self.stable
        total = sum((book.value(m, u) for m, u in held.items()), Fraction(0))
        cap = self.settings.max_concentration
        exact_cap = exact(cap)

        # Gaps at full size, before the factor: (mint, base units of the mint to sell).
        sells: list[tuple[str, int]] = []
        # (mint to buy, stablecoin base units to spend).
        buys: list[tuple[str, int]] = []
        for mint in sorted((set(held) | set(weights)) - {stable}):
            weight = weights.get(mint, 0.0)
            if weight > cap:
                self.skip(
                    SkipReason.CONCENTRATION_CAP,
                    mint,
                    total * (exact(weight) - exact_cap),
                    f"target weight {weight:g} capped at max_concentration {cap:g}; the rest stays in the stablecoin",
                )
                weight = cap
            units = held.get(mint, 0)
            if weight == 0:
                # Sold entirely: the whole balance, never a rounded value that leaves dust behind.
                sells.append((mint, units))
                continue
            current = book.value(mint, units)
            wanted = total * exact(weight)
            if wanted < current:
                sells.append((mint, min(units, book.units(mint, current - wanted))))
            elif wanted > current:
                buys.append((mint, book.units(stable, wanted - current)))

        if self.correlation is not None:
            buys = self._correlated(buys, held, total, self.correlation)
        sell_legs = self._legs(sells, sell=True)
        haircut = _BPS - self.settings.proceeds_haircut_bps
        available = held.get(stable, 0) + sum(
            book.units(stable, book.value(mint, amount)) * haircut // _BPS for mint, amount in sell_legs
        )
        buy_legs = self._legs(self._fit(buys, available), sell=False)

        trades = []
        for mint, amount in sell_legs:
            trades.append(self._trade(len(trades), mint, stable, amount, mint))
        for mint, amount in buy_legs:
            trades.append(self._trade(len(trades), stable, mint, amount, stable))
        return TradePlan(
            vault_id=self.vault_id,
            round_key=self.key,
            trades=tuple(trades),
            skipped=tuple(self.skipped),
            refused=False,
            value_usd=float(total),
            stable_available=available,
            stable_for_buys=sum(amount for _, amount in buy_legs),
        )

    def _correlated(
        self, buys: list[tuple[str, int]], held: dict[str, int], total: Fraction, limits: ClusterLimits
    ) -> list[tuple[str, int]]:
        """Cut the buys into each cluster to its room: per vault, then engine-wide (sells never).

        The cluster's value is counted before this plan's sells (they are traded, and the buys
        re-planned on fresh balances, before any buy): never less than it will be.
        """
        book, stable = self.book, self.stable
        for members in limits.clusters:
            kept = sum((book.value(m, held[m]) for m in members if m in held), Fraction(0))
            rooms = [(SkipReason.CORRELATED_EXPOSURE, share_room(total, kept, limits.max_share))]
            if members in limits.global_room:
                rooms.append((SkipReason.CORRELATED_EXPOSURE_GLOBAL, limits.global_room[members]))
            for reason, room in rooms:
                buys, cuts = fit_buys(buys, members, book.units(stable, max(room, Fraction(0))))
                for c in cuts:
                    limit = (
                        f"per_vault_max_share {float(limits.max_share):g} of the vault's {float(total):.2f} USD"
                        if reason is SkipReason.CORRELATED_EXPOSURE
                        else "global_max_usd across all vaults" + limits.global_note
                    )
                    self.skip(
                        reason,
                        c.mint,
                        book.value(stable, c.wanted - c.kept),
                        f"buy cut to {c.kept} of {c.wanted} stablecoin units: cluster {'+'.join(members)} "
                        f"holds {float(kept):.2f} USD, room {float(max(room, 0)):.2f} USD under {limit}",
                    )
        return buys

    def _rounded_away(self, unit: str, mint: str, units: int, side: str) -> None:
        self.skip(
            SkipReason.DUST,
            mint,
            self.book.value(unit, units) * self.factor,
            f"{side} rounds to 0 base units at position factor {float(self.factor):g}",
        )

    def _fit(self, buys: list[tuple[str, int]], available: int) -> list[tuple[str, int]]:
        """Scale the buys by the factor, then down to what the stablecoin balance allows."""
        scaled = []
        for mint, units in buys:
            amount = math.floor(units * self.factor)
            if amount == 0 and units > 0:
                self._rounded_away(self.stable, mint, units, "buy")
            scaled.append((mint, amount))
        wanted = sum(units for _, units in scaled)
        if wanted <= available:
            return scaled
        fitted = []
        for mint, units in scaled:
            # Proportional, rounded down: the sum never exceeds what is available.
            kept = units * available // wanted
            if kept < units:
                self.skip(
                    SkipReason.INSUFFICIENT_STABLE,
                    mint,
                    self.book.value(self.stable, units - kept),
                    f"buy cut to {kept} of {units} stablecoin units: the balance after sells allows no more",
                )
            fitted.append((mint, kept))
        return fitted

    def _legs(self, gaps: list[tuple[str, int]], *, sell: bool) -> list[tuple[str, int]]:
        """Apply the factor (sells), dust, oversize and split rules; largest first.

        Returns (mint traded against the stablecoin, amount in base units of the input) per
        trade. For buys the amounts are stablecoin units and are already scaled by the factor.
        """
        book = self.book
        unit_mint = (lambda m: m) if sell else (lambda m: self.stable)
        sized = []
        for mint, units in gaps:
            amount = units
            if sell:
                amount = math.floor(units * self.factor)
                if amount == 0 and units > 0:
                    self._rounded_away(mint, mint, units, "sell")
            sized.append((book.value(unit_mint(mint), amount), mint, amount))
        sized.sort(key=lambda item: (-item[0], item[1]))
        legs: list[tuple[str, int]] = []
        for value, mint, amount in sized:
            for piece in self._pieces(unit_mint(mint), mint, amount, value, sell):
                legs.append((mint, piece))
        return legs

    def _pieces(self, unit: str, mint: str, amount: int, value: Fraction, sell: bool) -> tuple[int, ...]:
        side = "sell" if sell else "buy"
        if amount <= 0 or value < self.min_usd:
            if amount > 0:
                self.skip(SkipReason.DUST, mint, value, f"{side} worth less than min_trade_usd")
            return ()
        if value <= self.max_usd:
            return (amount,)
        settings = self.settings
        if settings.oversize == "refuse":
            self.skip(SkipReason.OVERSIZE, mint, value, f"{side} worth more than max_trade_usd (oversize = refuse)")
            return ()
        max_units = self.book.units(unit, self.max_usd)
        if max_units == 0:
            self.skip(SkipReason.OVERSIZE, mint, value, "one base unit is worth more than max_trade_usd")
            return ()
        count = -(-amount // max_units)
        if count > settings.max_split:
            kept = settings.max_split * max_units
            self.skip(
                SkipReason.SPLIT_LIMIT,
                mint,
                self.book.value(unit, amount - kept),
                f"{side} needs {count} pieces, max_split is {settings.max_split}: the rest waits for a later round",
            )
            amount, count = kept, settings.max_split
        # Equal pieces; the first `extra` carry one unit more, so the pieces sum to the amount
        # exactly (an exit still sells the whole balance) and none exceeds max_units.
        size, extra = divmod(amount, count)
        return tuple(size + 1 if i < extra else size for i in range(count))

    def _trade(self, index: int, input_mint: str, output_mint: str, amount: int, unit: str) -> PlannedTrade:
        return PlannedTrade(
            trade_id=f"{self.vault_id}:{self.key}:{index}",
            vault_id=self.vault_id,
            round_key=self.key,
            input_mint=input_mint,
            output_mint=output_mint,
            amount_in=amount,
            value_usd=float(self.book.value(unit, amount)),
            reduces_exposure=input_mint != self.stable,
            index=index,
        )
