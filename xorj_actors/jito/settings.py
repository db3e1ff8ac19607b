"""``[jito]``: Jito's block engine (tips, bundles, sandwich protection). Off by default.

The block engine's JSON-RPC lives under two paths of one base URL (``/api/v1/bundles``,
``/api/v1/transactions``, docs.jito.wtf "Low Latency Transaction Send"); the tip floor is a REST
endpoint on another host (``https://bundles.jito.wtf/api/v1/bundles/tip_floor``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["DONT_FRONT_PREFIX", "JitoSettings", "MIN_TIP_LAMPORTS", "TipPercentile"]

#: Jito's documented minimum tip (docs.jito.wtf, "Tip Amount"): a smaller bundle is not considered.
MIN_TIP_LAMPORTS = 1_000
#: A key whose base58 text starts with this marks a transaction that must be first in any bundle
#: (docs.jito.wtf, "Sandwich Mitigation"; the account need not exist on chain).
DONT_FRONT_PREFIX = "jitodontfront"


class TipPercentile(enum.StrEnum):
    """Which landed-tip figure of the tip floor sizes our tip (its field in the answer)."""

    P25 = "25"
    P50 = "50"
    P75 = "75"
    P95 = "95"
    P99 = "99"
    #: ``ema_landed_tips_50th_percentile``: the median, smoothed.
    EMA50 = "ema50"


@dataclass(frozen=True, slots=True)
class JitoSettings:
    """``[jito]``."""

    #: Send through the block engine at all (off: the RPC routes only).
    enabled: bool = False
    #: e.g. ``https://mainnet.block-engine.jito.wtf``; the JSON-RPC paths are appended. Empty:
    #: the localnet's block engine.
    block_engine_url: str = ""
    #: The tip floor's full URL; empty: the localnet's (``<block engine>/api/v1/bundles/tip_floor``).
    tip_floor_url: str = ""
    tip_percentile: TipPercentile = TipPercentile.P75
    #: The tip never goes below this (Jito's minimum is 1,000 lamports) ...
    tip_floor_lamports: int = 10_000
    #: ... nor above this, whatever the tip floor says.
    tip_cap_lamports: int = 1_000_000
    #: Add the ``jitodontfront`` read-only account to the swap: the block engine then refuses any
    #: bundle in which our transaction is not first (sandwich protection).
    protection: bool = True
    #: The ``jitodontfront`` key (any valid key starting with ``jitodontfront``).
    dont_front_account: str = "jitodontfront111111111111111111111111111111"
    #: ``sendTransaction`` with ``bundleOnly=true``: a one-transaction bundle, never a plain send.
    bundle_only: bool = True
    request_timeout_s: float = 5.0
    connect_timeout_s: float = 2.0
    #: Answers larger than this are refused (the block engine's answers are a few hundred bytes).
    max_answer_bytes: int = 100_000
    #: The executor asks for its open bundles' statuses this often (docs/JITO.md, "Tracking"):
    #: each tick at most one ``getInflightBundleStatuses`` and one ``getBundleStatuses``.
    status_poll_interval_s: float = 2.0
    #: Bundles tracked at once; beyond it the oldest is no longer followed (its record stays).
    max_tracked_bundles: int = 10_000

    def validate(self) -> None:
        for name in ("block_engine_url", "tip_floor_url"):
            url = getattr(self, name)
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"{name}: must be an http(s) URL or empty")
            if url.endswith("/"):
                raise ValueError(f"{name}: no trailing slash")
        if not MIN_TIP_LAMPORTS <= self.tip_floor_lamports <= self.tip_cap_lamports:
            raise ValueError(f"tip_floor_lamports: need {MIN_TIP_LAMPORTS} <= tip_floor_lamports <= tip_cap_lamports")
        if self.tip_cap_lamports > 10**10:
            raise ValueError("tip_cap_lamports: at most 10000000000 (10 SOL)")
        if not self.dont_front_account.startswith(DONT_FRONT_PREFIX):
            raise ValueError(f"dont_front_account: must start with {DONT_FRONT_PREFIX!r}")
        from solders.pubkey import Pubkey  # lazily: loading a config should not load solders

        try:
            Pubkey.from_string(self.dont_front_account)
        except ValueError:
            raise ValueError(f"dont_front_account: not a base58 public key: {self.dont_front_account!r}") from None
        for name in ("request_timeout_s", "connect_timeout_s"):
            if not 0 < getattr(self, name) <= 300:
                raise ValueError(f"{name}: must be in (0, 300] seconds")
        if self.connect_timeout_s > self.request_timeout_s:
            raise ValueError("connect_timeout_s: must not exceed request_timeout_s")
        if not 1_000 <= self.max_answer_bytes <= 10_000_000:
            raise ValueError("max_answer_bytes: must be between 1000 and 10000000")
        if not 0.05 <= self.status_poll_interval_s <= 300:
            raise ValueError("status_poll_interval_s: must be between 0.05 and 300 seconds")
        if not 1 <= self.max_tracked_bundles <= 1_000_000:
            raise ValueError("max_tracked_bundles: must be between 1 and 1000000")
