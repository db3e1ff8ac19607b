"""The correlated-exposure limits as values (pure: what a plan may buy into a cluster).

Only buys are limited: a sell or a flatten reduces exposure and is always allowed. A vault's
buys into a cluster are cut, in proportion and rounded down in stablecoin base units, to what
keeps the cluster within both limits:

* per vault: the cluster's value after the plan's sells at most ``per_vault_max_share`` of the
  vault's value;
* engine-wide: at most the cluster's free room on the :class:`ExposureBoard` (``global_max_usd``
  less what every vault holds and has reserved in it).

A cut is never silent: the planner records it as a ``Skipped`` entry with its reason
(``correlated_exposure`` or ``correlated_exposure_global``); a cut to 0 is a refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from xorj_actors.correlation._estimate import Cluster

__all__ = ["ClusterLimits", "Cut", "fit_buys", "share_room", "stakes", "usd_by_mint"]


@dataclass(frozen=True, slots=True)
class ClusterLimits:
    """What a plan needs to know of the limits: data in, so the planner stays pure."""

    clusters: tuple[Cluster, ...]
    #: Largest share of the vault's value one cluster may reach after the plan.
    max_share: Fraction
    #: USD each cluster may still take engine-wide; a cluster absent here has no engine-wide limit.
    global_room: Mapping[Cluster, Fraction] = field(default_factory=dict)
    #: Why the engine-wide room is what it is, when not plain (appended to a cut's detail).
    global_note: str = ""


@dataclass(frozen=True, slots=True)
class Cut:
    """A buy made smaller by a limit: ``kept`` of ``wanted`` stablecoin base units."""

    mint: str
    wanted: int
    kept: int
    cluster: Cluster


def fit_buys(buys: Sequence[tuple[str, int]], members: Cluster, room_units: int) -> tuple[list[tuple[str, int]], list[Cut]]:
    """Cut the buys of ``members`` so that together they spend at most ``room_units``.

    Args:
        buys: (mint, stablecoin base units) of the plan's buys, any mints.
        members: the cluster.
        room_units: stablecoin base units the cluster may still take (negative counts as 0).

    Returns:
        The buys (same order, other mints untouched) and one :class:`Cut` per buy made smaller.
        The kept amounts are ``wanted * room // total`` rounded down: their sum never exceeds the room.
    """
    room = max(0, room_units)
    total = sum(units for mint, units in buys if mint in members)
    if total <= room:
        return list(buys), []
    fitted, cuts = [], []
    for mint, units in buys:
        if mint in members:
            kept = units * room // total
            if kept < units:
                cuts.append(Cut(mint, units, kept, members))
            units = kept
        fitted.append((mint, units))
    return fitted, cuts


def share_room(total_usd: Fraction, kept_usd: Fraction, max_share: Fraction) -> Fraction:
    """USD one vault may still buy into a cluster holding ``kept_usd`` after its sells."""
    return max(Fraction(0), total_usd * max_share - kept_usd)



def stakes(
    items: Iterable[tuple[str, str, int]], prices: Mapping[str, float], decimals: Mapping[str, int], clusters: Iterable[Cluster]
) -> dict[Cluster, Fraction]:
    """USD per cluster of ``(mint, unit, units)``: ``units`` of ``unit`` counted in ``mint``'s cluster.

    Holdings are ``(mint, mint, units)``; a buy is ``(mint bought, stablecoin, units spent)``.
    Exact (the price as the decimal it was written as); a mint without a price or decimals is
    left out (the plan refuses to trade on it anyway).
    """
    of = {m: c for c in clusters for m in c}
    out: dict[Cluster, Fraction] = {}
    for mint, usd in usd_by_mint((i for i in items if i[0] in of), prices, decimals).items():
        out[of[mint]] = out.get(of[mint], Fraction(0)) + usd
    return out


def usd_by_mint(
    items: Iterable[tuple[str, str, int]], prices: Mapping[str, float], decimals: Mapping[str, int]
) -> dict[str, Fraction]:
    """USD per mint of ``(mint, unit, units)`` (see :func:`stakes`), every mint its own."""
    out: dict[str, Fraction] = {}
    for mint, unit, units in items:
        price, places = prices.get(unit), decimals.get(unit)
        if price is None or places is None or units <= 0:
            continue
        out[mint] = out.get(mint, Fraction(0)) + units * Fraction(repr(float(price))) / 10**places
    return out
