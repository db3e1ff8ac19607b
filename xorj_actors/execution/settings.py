"""``[execution]``: how a trade becomes a confirmed transaction."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from xorj_actors.fees.settings import FeeSettings

__all__ = ["ExecutionSettings", "RetrySettings", "RouteCheckSettings"]

_BASE58_KEY = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")
#: ComputeBudget, System, SPL Token, Token-2022, Associated Token Account, Memo v2 and v1.
DEFAULT_PROGRAMS: tuple[str, ...] = (
    "ComputeBudget111111111111111111111111111111",
    "11111111111111111111111111111111",
    "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
    "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb",
    "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL",
    "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr",
    "Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo",
)
#: Jupiter's v6 aggregator program.
#: Jupiter's aggregator (v6, the Swap API's and Ultra's Metis routes) and its order engine (Ultra's
#: RFQ routes: tests/data/jupiter/ultra-order-jupiterz-rfq.json).
DEFAULT_AGGREGATORS: tuple[str, ...] = (
    "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4",
    "61DFfeTKM7trxYcPQCM78bJ794ddZprZpAwAnLiwTpYH",
)


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """``[execution.retry]``: backoff per error class (see docs/EXECUTION.md, "Errors and retries")."""

    #: Attempts per trade, the first included; each attempt is a new quote and transaction.
    max_attempts: int = 4
    #: Network errors and rate limiting: exponential, ``initial * 2**n`` capped at ``max``, full jitter.
    network_initial_s: float = 0.2
    network_max_s: float = 10.0
    #: Program errors and timeouts: linear, ``step * n``.
    program_step_s: float = 1.0
    #: A 429's Retry-After is honoured up to this; longer waits give the trade up (rejected).
    max_retry_after_s: float = 60.0

    def validate(self) -> None:
        if not 1 <= self.max_attempts <= 20:
            raise ValueError("max_attempts: must be between 1 and 20")
        if not 0 < self.network_initial_s <= self.network_max_s:
            raise ValueError("network_initial_s: must be > 0 and <= network_max_s")
        if self.program_step_s < 0:
            raise ValueError("program_step_s: must be >= 0")
        if self.max_retry_after_s <= 0:
            raise ValueError("max_retry_after_s: must be > 0")


@dataclass(frozen=True, slots=True)
class RouteCheckSettings:
    """``[execution.routes]``: the allowlist and the effect check (docs/EXECUTION.md, "The allowlist")."""

    #: Programs a route may call besides the aggregators (System and ATA are further restricted).
    programs: tuple[str, ...] = DEFAULT_PROGRAMS
    aggregator_programs: tuple[str, ...] = DEFAULT_AGGREGATORS
    #: Accounts a route may tip with a System transfer (never through a lookup table).
    tip_accounts: tuple[str, ...] = ()
    #: The most SOL a trade may spend on fee, tip and rent together.
    max_sol_spend_lamports: int = 10_000_000
    #: The highest platform fee an aggregator instruction may carry.
    max_platform_fee_bps: int = 0
    #: The highest fee an Ultra order may carry (its ``feeBps``: Ultra's own fee on the output).
    max_ultra_fee_bps: int = 10
    #: Commitment of the pre-state read and the simulation; attempts to get both at one slot.
    effect_commitment: str = "confirmed"
    effect_read_attempts: int = 4

    def validate(self) -> None:
        for name in ("programs", "aggregator_programs", "tip_accounts"):
            for key in getattr(self, name):
                if not _BASE58_KEY.fullmatch(key):
                    raise ValueError(f"{name}: {key!r} is not a base58 address")
        if not self.aggregator_programs:
            raise ValueError("aggregator_programs: at least one")
        if not 0 < self.max_sol_spend_lamports <= 10**10:
            raise ValueError("max_sol_spend_lamports: must be between 1 and 10000000000")
        if not 0 <= self.max_platform_fee_bps <= 255:
            raise ValueError("max_platform_fee_bps: must be between 0 and 255 (a u8 on chain)")
        if not 0 <= self.max_ultra_fee_bps <= 10_000:
            raise ValueError("max_ultra_fee_bps: must be between 0 and 10000")
        if self.effect_commitment not in ("processed", "confirmed", "finalized"):
            raise ValueError("effect_commitment: processed, confirmed or finalized")
        if not 1 <= self.effect_read_attempts <= 20:
            raise ValueError("effect_read_attempts: must be between 1 and 20")


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    """``[execution]``: endpoints, compute budget, rebroadcast, bounds."""

    #: False: no Executor and no Confirmation actor (an engine that cannot trade, for tests of the rest).
    enabled: bool = True
    #: JSON-RPC and quote-service endpoints; empty: the in-process localnet's (``[localnet] enabled``).
    rpc_url: str = ""
    #: PubSub WebSocket of the same node (the Confirmation actor's connection).
    ws_url: str = ""
    quote_url: str = ""
    #: The ``[[signers.keys]]`` entry that signs swaps; empty: the first key.
    signer: str = ""
    #: Compute-unit limit = units the simulation consumed x margin, at least ``min_compute_units``.
    compute_unit_margin: float = 1.2
    min_compute_units: int = 1_000
    #: Limit used for the simulation itself (the real limit comes from what it consumed).
    simulation_compute_units: int = 400_000
    #: How long a fetched blockhash is reused.
    blockhash_max_age_s: float = 1.0
    #: How long Jupiter's reference prices (the money check's) are reused: the trades checking
    #: the same mints within it share one ``GET /price/v3``. 0: one request per check.
    price_max_age_s: float = 1.0
    #: A quote or order whose next call waits its budget's turn longer than this is asked again
    #: (its prices and route would be stale): the attempt ends as ``quote_expired`` and a new one
    #: re-quotes.
    quote_max_wait_s: float = 10.0
    #: Signed bytes are sent again at this interval until confirmed or expired.
    rebroadcast_interval_s: float = 2.0
    #: More JSON-RPC endpoints that get the same signed bytes (after the RPC's preflight answered,
    #: and at every rebroadcast); a failure there is a counted skip, never the trade's.
    send_urls: tuple[str, ...] = ()
    #: Every HTTP request (quote service, JSON-RPC) gives up after this long.
    request_timeout_s: float = 10.0
    #: An ask to the signer or the audit log gives up after this long (fail closed: no trade).
    internal_timeout_s: float = 5.0
    #: Trades accepted at once; more are refused at once (backpressure on the vaults).
    max_in_flight: int = 20_000
    #: Trades with a final outcome kept in memory for idempotent replies (older ones: the audit log).
    outcome_cache: int = 100_000
    retry: RetrySettings = field(default_factory=RetrySettings)
    routes: RouteCheckSettings = field(default_factory=RouteCheckSettings)
    #: ``[execution.fees]``: priority fees scoped to the written accounts (docs/FEES.md).
    fees: FeeSettings = field(default_factory=FeeSettings)

    def validate(self) -> None:
        for name in ("rpc_url", "quote_url"):
            url = getattr(self, name)
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"{name}: must be an http(s) URL or empty")
        for url in self.send_urls:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError("send_urls: each must be an http(s) URL")
        if len(set(self.send_urls)) != len(self.send_urls):
            raise ValueError("send_urls: each endpoint once")
        if self.ws_url and not self.ws_url.startswith(("ws://", "wss://")):
            raise ValueError("ws_url: must be a ws(s) URL or empty")
        if not 1.0 <= self.compute_unit_margin <= 5.0:
            raise ValueError("compute_unit_margin: must be between 1.0 and 5.0")
        if not 0 < self.min_compute_units <= 1_400_000:
            raise ValueError("min_compute_units: must be between 1 and 1400000")
        if not self.min_compute_units <= self.simulation_compute_units <= 1_400_000:
            raise ValueError("simulation_compute_units: must be between min_compute_units and 1400000")
        if not 0 < self.quote_max_wait_s <= 300:
            raise ValueError("quote_max_wait_s: must be in (0, 300] seconds")
        if not 0 <= self.blockhash_max_age_s <= 60:
            raise ValueError("blockhash_max_age_s: must be between 0 and 60 seconds")
        if not 0 <= self.price_max_age_s <= 10:
            raise ValueError("price_max_age_s: must be between 0 and 10 seconds")
        if not 0.1 <= self.rebroadcast_interval_s <= 60:
            raise ValueError("rebroadcast_interval_s: must be between 0.1 and 60 seconds")
        for name in ("request_timeout_s", "internal_timeout_s"):
            if not 0 < getattr(self, name) <= 120:
                raise ValueError(f"{name}: must be in (0, 120] seconds")
        if not 1 <= self.max_in_flight <= 1_000_000:
            raise ValueError("max_in_flight: must be between 1 and 1000000")
        if self.outcome_cache < 0:
            raise ValueError("outcome_cache: must be >= 0")
