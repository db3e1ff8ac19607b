"""Settings of the embedded localnet (chain, genesis, quote service, quantitative engine)."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from xorj_actors.localnet.market_settings import BlockEngineSettings, QuantSettings, QuoteSettings
from xorj_actors.tokens import Token

__all__ = ["DEFAULT_MARKETS", "LocalnetSettings", "MarketSettings"]

_U64_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class MarketSettings:
    """``[[localnet.markets]]``: the localnet's market for one token of ``[[tokens]]``."""

    symbol: str
    price_usd: float = 1.0
    #: Annualised volatility of the quote service's random walk (0.9 = 90 %).
    volatility: float = 0.0
    #: Constant-product pool depth per side in USD: larger trades get more price impact.
    depth_usd: float = 1_000_000.0
    #: Starting balance of every vault's token account, in whole tokens.
    vault_balance: float = 0.0
    #: Market maker inventory in whole tokens; unset gives ten times the pool depth.
    market_maker_balance: float | None = None

    def validate(self) -> None:
        for key in ("price_usd", "depth_usd"):
            value = getattr(self, key)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{key}: must be a finite number > 0")
        if not math.isfinite(self.volatility) or not 0 <= self.volatility <= 50:
            raise ValueError("volatility: must be between 0 and 50")
        for key in ("vault_balance", "market_maker_balance"):
            value = getattr(self, key)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ValueError(f"{key}: must be a finite number >= 0")

    def market_maker_tokens(self) -> float:
        """The market maker's inventory in whole tokens (configured, or ten times the depth)."""
        if self.market_maker_balance is not None:
            return self.market_maker_balance
        return 10 * self.depth_usd / self.price_usd


def _check_pubkey(key: str, value: str) -> None:
    from solders.pubkey import Pubkey  # lazily: loading a config should not load solders

    try:
        Pubkey.from_string(value)
    except ValueError:
        raise ValueError(f"{key}: not a base58 public key: {value!r}") from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Markets of the default ``[[tokens]]``: USDC (the stablecoin), JUP, BONK and SOL.
DEFAULT_MARKETS: tuple[MarketSettings, ...] = (
    MarketSettings("USDC", 1.0, 0.0, 5_000_000.0, vault_balance=10_000.0),
    MarketSettings("JUP", 0.85, 0.9, 2_000_000.0),
    MarketSettings("BONK", 0.000025, 1.2, 1_000_000.0),
    MarketSettings("SOL", 150.0, 0.7, 10_000_000.0),
)


@dataclass(frozen=True, slots=True)
class LocalnetSettings:
    """``[localnet]``: run the offline cluster in-process (development only)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    rpc_port: int = 0  # 0: a free port
    #: Seed of every derived address (mints, market maker): same seed, same addresses.
    seed: str = "xorj-localnet"
    #: Slot length in milliseconds (mainnet: ~400).
    slot_ms: int = 400
    #: Manual clock: slots advance only on command (`Localnet.advance`), for tests.
    manual_clock: bool = False
    #: Slots a landed transaction waits before it is `confirmed` / `finalized`.
    confirmed_lag: int = 1
    finalized_lag: int = 32
    #: Blocks a blockhash stays valid (mainnet: 150).
    blockhash_valid_blocks: int = 150
    #: Slots a landed transaction stays queryable (getTransaction, searchTransactionHistory);
    #: bounds memory. Must exceed the blockhash window, which is what refuses a replay.
    history_slots: int = 100_000
    vaults: int = 8
    #: Base58 public keys of the vaults' authorities, vault 0 first (keys made with
    #: ``xorj-actors keys init --vaults``). Empty: each vault's DEVELOPMENT key, derived from
    #: the public development seed (``signers.dev_vault_keypair``): never fund those anywhere.
    vault_authorities: tuple[str, ...] = ()
    #: SOL given to each vault's authority (it pays its own swaps' fees and rent).
    authority_sol: float = 10.0
    market_maker_sol: float = 100.0
    #: Price, volatility, depth and balances per token; a token of ``[[tokens]]`` without an
    #: entry gets :class:`MarketSettings` defaults.
    markets: tuple[MarketSettings, ...] = DEFAULT_MARKETS
    quote: QuoteSettings = field(default_factory=QuoteSettings)
    quant: QuantSettings = field(default_factory=QuantSettings)
    block_engine: BlockEngineSettings = field(default_factory=BlockEngineSettings)
    #: A provider's budget on the JSON-RPC HTTP endpoint: past ``rpc_rate_limit_requests`` calls
    #: (a batch counts its entries) in a sliding ``rpc_rate_limit_window_s`` it answers 429 with
    #: the public RPC's body. 0: no limit.
    rpc_rate_limit_requests: int = 0
    rpc_rate_limit_window_s: float = 1.0

    def validate(self) -> None:
        if not _is_loopback(self.host):
            raise ValueError("host: must be a loopback address (the localnet has no authentication)")
        if not 0 <= self.rpc_port <= 65535:
            raise ValueError("rpc_port: must be between 0 and 65535")
        if not self.seed:
            raise ValueError("seed: must not be empty")
        if not 10 <= self.slot_ms <= 60_000:
            raise ValueError("slot_ms: must be between 10 and 60000")
        if not 0 <= self.confirmed_lag <= self.finalized_lag <= 1_000:
            raise ValueError("finalized_lag: need 0 <= confirmed_lag <= finalized_lag <= 1000")
        if not 1 <= self.blockhash_valid_blocks <= 10_000:
            raise ValueError("blockhash_valid_blocks: must be between 1 and 10000")
        if not self.blockhash_valid_blocks + self.finalized_lag < self.history_slots <= 10_000_000:
            raise ValueError("history_slots: must exceed blockhash_valid_blocks + finalized_lag, at most 1e7")
        if not 0 <= self.rpc_rate_limit_requests <= 1_000_000:
            raise ValueError("rpc_rate_limit_requests: must be between 0 (no limit) and 1000000")
        if not 0 < self.rpc_rate_limit_window_s <= 3600:
            raise ValueError("rpc_rate_limit_window_s: must be in (0, 3600]")
        if not 0 <= self.vaults <= 100_000:
            raise ValueError("vaults: must be between 0 and 100000")
        for i, key in enumerate(self.vault_authorities):
            _check_pubkey(f"vault_authorities[{i}]", key)
        if self.vault_authorities and len(self.vault_authorities) != self.vaults:
            raise ValueError(f"vault_authorities: {len(self.vault_authorities)} keys for {self.vaults} vaults")
        if len(set(self.vault_authorities)) != len(self.vault_authorities):
            raise ValueError("vault_authorities: each vault needs its own key")
        for key in ("authority_sol", "market_maker_sol"):
            value = getattr(self, key)
            if not math.isfinite(value) or not 0 <= value <= 1e9:
                raise ValueError(f"{key}: must be between 0 and 1e9")
        for i, market in enumerate(self.markets):
            try:
                market.validate()
            except ValueError as exc:
                raise ValueError(f"markets[{i}].{exc}") from None
        symbols = [m.symbol for m in self.markets]
        if len(set(symbols)) != len(symbols):
            raise ValueError("markets: symbols must be distinct")

    def market(self, symbol: str) -> MarketSettings:
        """The market of token ``symbol`` (defaults when ``[[localnet.markets]]`` has none)."""
        return next((m for m in self.markets if m.symbol == symbol), None) or MarketSettings(symbol)

    def check_tokens(self, tokens: Sequence[Token]) -> None:
        """Raise ``ValueError("key: problem")`` unless these markets and vaults fit ``tokens``.

        Every configured market names a token of the registry (the default markets describe the
        default tokens), and every token's supply fits a u64 at its decimals.
        """
        known = {t.symbol for t in tokens}
        index = {m.symbol: i for i, m in enumerate(self.markets)}
        if self.markets != DEFAULT_MARKETS:
            for symbol, i in index.items():
                if symbol not in known:
                    raise ValueError(f"markets[{i}]: no token {symbol!r} in [[tokens]]")
        for t in tokens:
            where = f"markets[{index[t.symbol]}]" if t.symbol in index else f"tokens ({t.symbol})"
            market, scale = self.market(t.symbol), 10**t.decimals
            for key in ("vault_balance", "market_maker_balance"):
                value = getattr(market, key)
                if value is not None and value * scale > _U64_MAX:
                    raise ValueError(f"{where}.{key}: does not fit a u64 at {t.decimals} decimals")
            if (market.market_maker_tokens() + market.vault_balance * self.vaults) * scale > _U64_MAX:
                raise ValueError(f"{where}: the supply of {t.symbol} does not fit a u64")
