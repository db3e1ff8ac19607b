"""The token registry: every traded token by mint and by symbol, and the one stablecoin."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from xorj_actors.tokens.settings import DEFAULT_TOKENS, TokenSettings, check_tokens

__all__ = ["Token", "TokenRegistry", "derived_mint"]


@dataclass(frozen=True, slots=True)
class Token:
    """One SPL token the engine trades."""

    symbol: str
    mint: Pubkey
    decimals: int
    stable: bool


def derived_mint(seed: str, symbol: str) -> Pubkey:
    """The development mint of ``symbol``: ``Keypair.from_seed(sha256(f"{seed}:mint:{symbol}"))``."""
    return Keypair.from_seed(hashlib.sha256(f"{seed}:mint:{symbol}".encode()).digest()).pubkey()


@dataclass(frozen=True, slots=True)
class TokenRegistry:
    """The tokens, in configuration order; lookups by mint (base58 or ``Pubkey``) and symbol."""

    tokens: tuple[Token, ...]
    _by_key: Mapping[str, Token] = field(default_factory=dict, repr=False, compare=False)
    _decimals: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, Token] = {}
        for t in self.tokens:
            index[t.symbol] = t
            index[str(t.mint)] = t
        object.__setattr__(self, "_by_key", MappingProxyType(index))
        # One shared read-only mapping: every vault holds it.
        object.__setattr__(self, "_decimals", MappingProxyType({str(t.mint): t.decimals for t in self.tokens}))

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def from_settings(tokens: tuple[TokenSettings, ...] = DEFAULT_TOKENS, seed: str = "xorj-localnet") -> TokenRegistry:
        """The registry of ``[[tokens]]``; a token without ``mint`` gets :func:`derived_mint`.

        Raises ``ValueError("tokens...: problem")`` for settings that do not make a registry.
        """
        check_tokens(tokens)
        return TokenRegistry(
            tuple(
                Token(t.symbol, Pubkey.from_string(t.mint) if t.mint else derived_mint(seed, t.symbol), t.decimals, t.stable)
                for t in tokens
            )
        )

    def __iter__(self) -> Iterator[Token]:
        return iter(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def by_mint(self, mint: str | Pubkey) -> Token:
        """The token of this mint; ``KeyError`` if unknown."""
        token = self._by_key.get(str(mint))
        if token is None or str(token.mint) != str(mint):
            raise KeyError(str(mint))
        return token

    def by_symbol(self, symbol: str) -> Token:
        """The token with this symbol; ``KeyError`` if unknown."""
        token = self._by_key.get(symbol)
        if token is None or token.symbol != symbol:
            raise KeyError(symbol)
        return token

    @property
    def stable(self) -> Token:
        """The stablecoin (exactly one, checked by :func:`~xorj_actors.tokens.check_tokens`)."""
        return next(t for t in self.tokens if t.stable)

    def decimals(self) -> Mapping[str, int]:
        """Base58 mint -> decimals of every token (the same read-only mapping every time)."""
        return self._decimals
