"""The localnet's genesis: mints, the market maker's inventory and the vaults' token accounts.

Everything is derived from the settings alone, so a test, a config file and a running localnet
agree on every address without talking to each other.

The tokens are the engine's token registry (``[[tokens]]``), their markets ``[[localnet.markets]]``.

Address scheme:
- mint of a token: the registry's (``tokens.derived_mint``, ``Keypair.from_seed(sha256(
  f"{seed}:mint:{symbol}"))``, unless the token names its own ``mint``);
- market maker: ``Keypair.from_seed(sha256(f"{seed}:market-maker"))``, its token accounts are
  its associated token accounts;
- vault ``i`` has id ``f"vault-{i:04d}"`` and its own authority: ``[localnet]
  vault_authorities[i]``, else its DEVELOPMENT key ``signers.dev_vault_keypair(
  signers.LOCALNET_DEV_SEED, vault_id)``; for each token, its token account is the authority's
  associated token account (``tokens.vault_token_account(authority, mint)``), and the authority
  holds ``authority_sol`` for its own fees and rent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.token.associated import get_associated_token_address
from solders.token.state import Mint, TokenAccount, TokenAccountState
from solders.transaction import VersionedTransaction

from xorj_actors.localnet.settings import LocalnetSettings
from xorj_actors.signers import LOCALNET_DEV_SEED, dev_vault_keypair, vault_id as vault_id_of
from xorj_actors.tokens import TOKEN_PROGRAM_ID, Token, TokenRegistry, vault_token_account

__all__ = [
    "Genesis",
    "TOKEN_PROGRAM_ID",
    "TokenSpec",
    "VaultSpec",
    "apply_genesis",
    "build_genesis",
    "dev_vault_authority",
    "fund",
    "swap_transaction",
    "vault_token_account",
]

LAMPORTS_PER_SOL = 1_000_000_000
_TRANSFER_CHECKED = 12


def _seeded_keypair(text: str | bytes) -> Keypair:
    data = text.encode() if isinstance(text, str) else text
    return Keypair.from_seed(hashlib.sha256(data).digest())


def dev_vault_authority(vault: str | int) -> Keypair:
    """The DEVELOPMENT authority of vault ``vault`` (id or index), used when ``localnet.vault_authorities``
    is empty: the key a ``dev_key`` store without a seed file signs with. Its seed is public."""
    return dev_vault_keypair(LOCALNET_DEV_SEED, vault if isinstance(vault, str) else vault_id_of(vault))


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """One token of the localnet: its mint and market parameters."""

    symbol: str
    mint: Pubkey
    decimals: int
    price_usd: float
    volatility: float
    depth_usd: float
    stable: bool
    #: Starting balance of each vault, in base units.
    vault_amount: int = 0
    #: Market maker inventory, in base units.
    market_maker_amount: int = 0


@dataclass(frozen=True, slots=True)
class VaultSpec:
    """One vault: its own authority and its token account (the authority's ATA) per symbol."""

    index: int
    vault_id: str
    authority: Pubkey
    token_accounts: Mapping[str, Pubkey]


@dataclass(frozen=True, slots=True)
class Genesis:
    """The localnet's initial state, pure data."""

    tokens: tuple[TokenSpec, ...]
    market_maker: Keypair
    market_maker_accounts: Mapping[str, Pubkey]
    vaults: tuple[VaultSpec, ...]
    #: Lamports of each vault's authority (the fee payer of its swaps) and of the market maker.
    authority_lamports: int = 0
    market_maker_lamports: int = 0
    _index: Mapping[str, TokenSpec] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, TokenSpec] = {}
        for t in self.tokens:
            index[t.symbol] = t
            index[str(t.mint)] = t
        object.__setattr__(self, "_index", MappingProxyType(index))

    def token(self, symbol_or_mint: str | Pubkey) -> TokenSpec:
        """The token with this symbol or mint; ``KeyError`` if unknown."""
        return self._index[str(symbol_or_mint)]

    @property
    def stable(self) -> TokenSpec:
        """The stablecoin."""
        return next(t for t in self.tokens if t.stable)

    def vault_of(self, authority: Pubkey) -> VaultSpec:
        """The vault whose authority is ``authority``; ``KeyError`` if none."""
        for v in self.vaults:
            if v.authority == authority:
                return v
        raise KeyError(str(authority))

    def vault(self, vault_id_or_index: str | int) -> VaultSpec:
        """A vault by id (``"vault-0007"``) or index; ``KeyError`` if unknown."""
        for v in self.vaults:
            if v.vault_id == vault_id_or_index or v.index == vault_id_or_index:
                return v
        raise KeyError(vault_id_or_index)


def _base_units(amount: float, decimals: int) -> int:
    return int(round(amount * 10**decimals))


def _token_spec(settings: LocalnetSettings, t: Token) -> TokenSpec:
    market = settings.market(t.symbol)
    return TokenSpec(
        symbol=t.symbol,
        mint=t.mint,
        decimals=t.decimals,
        price_usd=market.price_usd,
        volatility=market.volatility,
        depth_usd=market.depth_usd,
        stable=t.stable,
        vault_amount=_base_units(market.vault_balance, t.decimals),
        market_maker_amount=_base_units(market.market_maker_tokens(), t.decimals),
    )


def build_genesis(settings: LocalnetSettings, tokens: TokenRegistry | None = None) -> Genesis:
    """The genesis described by ``settings`` for ``tokens``: pure and deterministic.

    ``tokens`` is the engine's registry (``Config.token_registry()``); ``None`` gives the
    default ``[[tokens]]`` with mints derived from ``settings.seed``. Raises
    ``ValueError("key: problem")`` for settings that fail their validation.
    """
    settings.validate()
    registry = TokenRegistry.from_settings(seed=settings.seed) if tokens is None else tokens
    settings.check_tokens(registry.tokens)
    specs = tuple(_token_spec(settings, t) for t in registry)
    market_maker = _seeded_keypair(f"{settings.seed}:market-maker")
    mm_accounts = {t.symbol: get_associated_token_address(market_maker.pubkey(), t.mint) for t in specs}
    vaults = []
    for i in range(settings.vaults):
        vault_id = vault_id_of(i)
        authority = (
            Pubkey.from_string(settings.vault_authorities[i])
            if settings.vault_authorities
            else dev_vault_authority(vault_id).pubkey()
        )
        accounts = {t.symbol: vault_token_account(authority, t.mint) for t in specs}
        vaults.append(VaultSpec(i, vault_id, authority, MappingProxyType(accounts)))
    return Genesis(
        tokens=specs,
        market_maker=market_maker,
        market_maker_accounts=MappingProxyType(mm_accounts),
        vaults=tuple(vaults),
        authority_lamports=int(settings.authority_sol * LAMPORTS_PER_SOL),
        market_maker_lamports=int(settings.market_maker_sol * LAMPORTS_PER_SOL),
    )


def _place(svm: LiteSVM, address: Pubkey, data: bytes, owner: Pubkey = TOKEN_PROGRAM_ID) -> None:
    lamports = svm.minimum_balance_for_rent_exemption(len(data))
    svm.set_account(address, Account(lamports, data, owner, False, 0))


def apply_genesis(svm: LiteSVM, genesis: Genesis) -> None:
    """Write ``genesis`` into ``svm``: mints, market maker inventory, each vault's associated token
    accounts (owned by its own authority), and SOL for each authority's fees and rent."""
    mm = genesis.market_maker.pubkey()
    for t in genesis.tokens:
        supply = t.market_maker_amount + t.vault_amount * len(genesis.vaults)
        # No mint authority: the supply is fixed at genesis, as for a token nobody can print.
        _place(svm, t.mint, bytes(Mint(None, supply, t.decimals, True)))
        _place(svm, genesis.market_maker_accounts[t.symbol], _token_account(t.mint, mm, t.market_maker_amount))
        for v in genesis.vaults:
            _place(svm, v.token_accounts[t.symbol], _token_account(t.mint, v.authority, t.vault_amount))
    fund(svm, mm, genesis.market_maker_lamports)
    for v in genesis.vaults:
        fund(svm, v.authority, genesis.authority_lamports)


def fund(svm: LiteSVM, pubkey: Pubkey, lamports: int) -> None:
    """Make ``pubkey`` a system account holding ``lamports`` (LiteSVM's own faucet runs dry)."""
    svm.set_account(pubkey, Account(lamports, b"", SYSTEM_PROGRAM_ID, False, 0))


def _token_account(mint: Pubkey, owner: Pubkey, amount: int) -> bytes:
    return bytes(TokenAccount(mint, owner, amount, None, TokenAccountState.Initialized, None, 0))


def swap_transaction(
    genesis: Genesis,
    vault: VaultSpec,
    authority: Keypair,
    blockhash: Hash,
    *,
    sell: str,
    buy: str,
    amount_in: int,
    amount_out: int,
) -> VersionedTransaction:
    """A signed two-leg swap for tests and benchmarks: the vault pays ``amount_in`` of ``sell``
    to the market maker, the market maker pays ``amount_out`` of ``buy`` to the vault, atomically.

    The vault's authority (``authority``, its keypair) pays the fee; both sign. The quote service's
    routes are Jupiter's (:mod:`.jupiter_swap`, :mod:`.jupiter_ultra`).
    """
    mm = genesis.market_maker
    authority_key, mm_key = authority.pubkey(), mm.pubkey()
    mm_accounts = genesis.market_maker_accounts
    ixs = [
        _transfer_checked(genesis.token(sell), vault.token_accounts[sell], mm_accounts[sell], authority_key, amount_in),
        _transfer_checked(genesis.token(buy), mm_accounts[buy], vault.token_accounts[buy], mm_key, amount_out),
    ]
    message = MessageV0.try_compile(authority_key, ixs, [], blockhash)
    raw = to_bytes_versioned(message)
    # Signature order follows the message: the fee payer (authority) first, then the market maker.
    return VersionedTransaction.populate(message, [authority.sign_message(raw), mm.sign_message(raw)])


def _transfer_checked(token: TokenSpec, source: Pubkey, dest: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    """SPL Token ``TransferChecked`` (instruction 12), built directly: spl's builder is slow."""
    accounts = [
        AccountMeta(source, is_signer=False, is_writable=True),
        AccountMeta(token.mint, is_signer=False, is_writable=False),
        AccountMeta(dest, is_signer=False, is_writable=True),
        AccountMeta(owner, is_signer=True, is_writable=False),
    ]
    data = bytes([_TRANSFER_CHECKED]) + amount.to_bytes(8, "little") + bytes([token.decimals])
    return Instruction(TOKEN_PROGRAM_ID, data, accounts)
