"""``[[tokens]]``: the tokens the engine trades (symbol, mint, decimals, the one stablecoin)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_TOKENS", "TokenSettings", "check_tokens"]


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """``[[tokens]]``: one SPL token."""

    symbol: str
    decimals: int = 6
    #: Exactly one token is the stablecoin (the unit vault values are measured in).
    stable: bool = False
    #: Base58 mint address. Empty: derived from ``[localnet] seed`` and the symbol, the
    #: localnet's development mints (see docs/LOCALNET.md).
    mint: str = ""

    def validate(self) -> None:
        if not self.symbol or not self.symbol.isalnum() or len(self.symbol) > 10:
            raise ValueError("symbol: must be 1-10 letters or digits")
        if not 0 <= self.decimals <= 12:
            raise ValueError("decimals: must be between 0 and 12")
        if self.mint:
            from solders.pubkey import Pubkey  # lazily: loading a config should not need solders

            try:
                Pubkey.from_string(self.mint)
            except ValueError:
                raise ValueError(f"mint: not a base58 public key: {self.mint!r}") from None


#: USDC (the stablecoin), JUP, BONK and SOL (an SPL mint standing in for wrapped SOL).
DEFAULT_TOKENS: tuple[TokenSettings, ...] = (
    TokenSettings("USDC", 6, stable=True),
    TokenSettings("JUP", 6),
    TokenSettings("BONK", 5),
    TokenSettings("SOL", 9),
)


def check_tokens(tokens: Sequence[TokenSettings]) -> None:
    """Raise ``ValueError("tokens...: problem")`` unless ``tokens`` make a registry."""
    for i, token in enumerate(tokens):
        try:
            token.validate()
        except ValueError as exc:
            raise ValueError(f"tokens[{i}].{exc}") from None
    symbols = [t.symbol for t in tokens]
    if len(set(symbols)) != len(symbols):
        raise ValueError("tokens: symbols must be distinct")
    if not tokens or sum(t.stable for t in tokens) != 1:
        raise ValueError("tokens: exactly one token must have stable = true")
    mints = [t.mint for t in tokens if t.mint]
    if len(set(mints)) != len(mints):
        raise ValueError("tokens: mints must be distinct")
