"""Settings of the embedded localnet (chain, genesis, quote service, quantitative engine)."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

from xorj_actors.localnet.market_settings import QuantSettings, QuoteSettings

__all__ = ["LocalnetSettings", "TokenSettings", "DEFAULT_TOKENS"]

_U64_MAX = 2**64 - 1
#: `Pubkey.create_with_seed` takes at most 32 bytes of seed ("vault-0007:USDC").
_MAX_SEED_BYTES = 32


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """``[[localnet.tokens]]``: one SPL mint of the localnet and its market."""

    symbol: str
    decimals: int = 6
    price_usd: float = 1.0
    #: Annualised volatility of the quote service's random walk (0.9 = 90 %).
    volatility: float = 0.0
    #: Constant-product pool depth per side in USD: larger trades get more price impact.
    depth_usd: float = 1_000_000.0
    #: Exactly one token is the stablecoin (the unit vault values are measured in).
    stable: bool = False
    #: Base58 mint address; empty derives one from `localnet.seed` and the symbol.
    mint: str = ""
    #: Starting balance of every vault's token account, in whole tokens.
    vault_balance: float = 0.0
    #: Market maker inventory in whole tokens; unset gives ten times the pool depth.
    market_maker_balance: float | None = None

    def validate(self) -> None:
        if not self.symbol or not self.symbol.isalnum() or len(self.symbol) > 10:
            raise ValueError("symbol: must be 1-10 letters or digits")
        if not 0 <= self.decimals <= 12:
            raise ValueError("decimals: must be between 0 and 12")
        for key in ("price_usd", "depth_usd"):
            value = getattr(self, key)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{key}: must be a finite number > 0")
        if not math.isfinite(self.volatility) or not 0 <= self.volatility <= 50:
            raise ValueError("volatility: must be between 0 and 50")
        for key in ("vault_balance", "market_maker_balance"):
            value = getattr(self, key)
            if value is None:
                continue
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{key}: must be a finite number >= 0")
            if value * 10**self.decimals > _U64_MAX:
                raise ValueError(f"{key}: does not fit a u64 at {self.decimals} decimals")
        if self.mint:
            _check_pubkey("mint", self.mint)

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


#: USDC (the stablecoin), JUP, BONK and SOL (an SPL mint standing in for wrapped SOL).
DEFAULT_TOKENS: tuple[TokenSettings, ...] = (
    TokenSettings("USDC", 6, 1.0, 0.0, 5_000_000.0, True, vault_balance=10_000.0),
    TokenSettings("JUP", 6, 0.85, 0.9, 2_000_000.0),
    TokenSettings("BONK", 5, 0.000025, 1.2, 1_000_000.0),
    TokenSettings("SOL", 9, 150.0, 0.7, 10_000_000.0),
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
    #: Base58 public key of the vault authority (the engine's signer). Empty: the fixed
    #: DEVELOPMENT key of `genesis.dev_vault_authority()`, whose secret is public: never fund it.
    vault_authority: str = ""
    #: SOL given to the vault authority (it pays every swap's fee) and to the market maker.
    authority_sol: float = 1_000.0
    market_maker_sol: float = 100.0
    tokens: tuple[TokenSettings, ...] = DEFAULT_TOKENS
    quote: QuoteSettings = field(default_factory=QuoteSettings)
    quant: QuantSettings = field(default_factory=QuantSettings)

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
        if not 0 <= self.vaults <= 100_000:
            raise ValueError("vaults: must be between 0 and 100000")
        if self.vault_authority:
            _check_pubkey("vault_authority", self.vault_authority)
        for key in ("authority_sol", "market_maker_sol"):
            value = getattr(self, key)
            if not math.isfinite(value) or not 0 <= value <= 1e9:
                raise ValueError(f"{key}: must be between 0 and 1e9")
        for i, token in enumerate(self.tokens):
            try:
                token.validate()
            except ValueError as exc:
                raise ValueError(f"tokens[{i}].{exc}") from None
            if (token.market_maker_tokens() + token.vault_balance * self.vaults) * 10**token.decimals > _U64_MAX:
                raise ValueError(f"tokens[{i}]: the supply of {token.symbol} does not fit a u64")
        symbols = [t.symbol for t in self.tokens]
        if len(set(symbols)) != len(symbols):
            raise ValueError("tokens: symbols must be distinct")
        if not self.tokens or sum(t.stable for t in self.tokens) != 1:
            raise ValueError("tokens: exactly one token must have stable = true")
        mints = [t.mint for t in self.tokens if t.mint]
        if len(set(mints)) != len(mints):
            raise ValueError("tokens: mints must be distinct")
        longest = max(len(s) for s in symbols)
        if len(f"vault-{max(self.vaults - 1, 0):04d}:") + longest > _MAX_SEED_BYTES:
            raise ValueError("tokens: symbol too long for the vault account seed")
