"""Genesis and settings: deterministic addresses, balances on a real LiteSVM, strict config."""

from __future__ import annotations

import dataclasses

import pytest
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.token.state import Mint, TokenAccount

from xorj_actors.config import ConfigError, parse_config
from xorj_actors.localnet import (
    TOKEN_PROGRAM_ID,
    LocalnetSettings,
    apply_genesis,
    build_genesis,
    dev_vault_authority,
    swap_transaction,
    vault_token_account,
)


def test_genesis_is_deterministic_and_documented() -> None:
    a, b = build_genesis(LocalnetSettings()), build_genesis(LocalnetSettings())
    assert [t.mint for t in a.tokens] == [t.mint for t in b.tokens]
    assert a.market_maker.pubkey() == b.market_maker.pubkey()
    assert a.stable.symbol == "USDC" and a.stable.decimals == 6
    assert {t.symbol for t in a.tokens} == {"USDC", "JUP", "BONK", "SOL"}
    vault = a.vault("vault-0003")
    assert vault.index == 3 and vault.authority == dev_vault_authority(3).pubkey()
    assert a.vault_of(vault.authority) is vault
    expected = get_associated_token_address(vault.authority, a.token("JUP").mint, TOKEN_PROGRAM_ID)
    assert vault.token_accounts["JUP"] == expected == vault_token_account(vault.authority, a.token("JUP").mint)
    assert a.token(str(a.token("BONK").mint)).symbol == "BONK"
    with pytest.raises(KeyError):
        a.token("DOGE")
    with pytest.raises(TypeError):
        vault.token_accounts["DOGE"] = Pubkey.default()  # read-only mapping
    other_seed = build_genesis(LocalnetSettings(seed="elsewhere"))
    assert other_seed.token("JUP").mint != a.token("JUP").mint


def test_each_vault_has_its_own_authority_and_accounts() -> None:
    authorities = [Keypair().pubkey() for _ in range(3)]
    g = build_genesis(LocalnetSettings(vault_authorities=tuple(map(str, authorities)), vaults=3))
    assert [v.authority for v in g.vaults] == authorities
    for v in g.vaults:
        assert all(a == get_associated_token_address(v.authority, g.token(s).mint) for s, a in v.token_accounts.items())
    accounts = [a for v in g.vaults for a in v.token_accounts.values()]
    assert len(set(accounts)) == 3 * len(g.tokens)
    dev = build_genesis(LocalnetSettings(vaults=3))
    assert len({v.authority for v in dev.vaults}) == 3  # the development keys: each vault its own too


def test_apply_genesis_balances_on_litesvm() -> None:
    g = build_genesis(LocalnetSettings(vaults=2))
    svm = LiteSVM()
    apply_genesis(svm, g)
    usdc = g.stable
    for vault in g.vaults:
        acc = TokenAccount.from_bytes(bytes(svm.get_account(vault.token_accounts["USDC"]).data))
        assert (acc.mint, acc.owner, acc.amount) == (usdc.mint, vault.authority, 10_000 * 10**6)
    mint = Mint.from_bytes(bytes(svm.get_account(usdc.mint).data))
    assert mint.supply == usdc.market_maker_amount + 2 * usdc.vault_amount and mint.mint_authority is None
    assert [svm.get_balance(v.authority) for v in g.vaults] == [10 * 10**9] * 2  # each pays its own fees
    # The genesis really trades: a swap signed by the vault's authority and the market maker lands.
    tx = swap_transaction(
        g, g.vault(1), dev_vault_authority(1), svm.latest_blockhash(), sell="USDC", buy="SOL", amount_in=5, amount_out=9
    )
    assert type(svm.send_transaction(tx)).__name__ == "TransactionMetadata"
    # Another vault's key cannot move vault 1's tokens (the token program checks the owner).
    stolen = swap_transaction(
        g, g.vault(1), dev_vault_authority(0), svm.latest_blockhash(), sell="USDC", buy="SOL", amount_in=5, amount_out=9
    )
    assert type(svm.send_transaction(stolen)).__name__ == "FailedTransactionMetadata"
    sol = TokenAccount.from_bytes(bytes(svm.get_account(g.vault(1).token_accounts["SOL"]).data))
    assert sol.amount == 9


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[localnet]\nslot_ms = 1", "localnet.slot_ms"),
        ("[localnet]\nhost = '0.0.0.0'", "localnet.host: must be a loopback"),
        ("[localnet]\nconfirmed_lag = 40\nfinalized_lag = 32", "localnet.finalized_lag"),
        ("[localnet]\nvault_authorities = ['not-a-key']", r"localnet.vault_authorities\[0\]: not a base58"),
        ("[localnet]\nvaults = 2\nvault_authorities = ['11111111111111111111111111111111']", "2 vaults"),
        ("[localnet]\nvaults = -1", "localnet.vaults"),
        ("[localnet]\nslotms = 400", "did you mean 'slot_ms'"),
        ("[[tokens]]\nsymbol = 'USDC'\nstable = false", "tokens: exactly one token"),
        ("[[localnet.markets]]\nsymbol = 'USDC'\nprice_usd = -1.0", r"localnet.markets\[0\].price_usd"),
        ("[[tokens]]\nsymbol = 'US-DC'\nstable = true", r"tokens\[0\].symbol"),
        ("[[tokens]]\nsymbol = 'X'\nstable = true\n[[localnet.markets]]\nsymbol = 'X'\nvault_balance = 1e30", "u64"),
        ("[[localnet.markets]]\nsymbol = 'WIF'", r"localnet.markets\[0\]: no token 'WIF' in \[\[tokens\]\]"),
    ],
)
def test_bad_localnet_config_names_the_key(toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(toml)


def test_settings_built_in_code_are_validated_too() -> None:
    with pytest.raises(ValueError, match="slot_ms"):
        build_genesis(LocalnetSettings(slot_ms=0))
    huge = dataclasses.replace(LocalnetSettings().markets[0], vault_balance=1e12)
    with pytest.raises(ValueError, match=r"markets\[0\]: the supply of USDC does not fit a u64"):
        build_genesis(LocalnetSettings(markets=(huge,), vaults=100_000))
    with pytest.raises(ValueError, match=r"markets\[0\]\.price_usd"):
        build_genesis(LocalnetSettings(markets=(dataclasses.replace(huge, price_usd=0.0),)))


def test_config_tokens_and_empty_config() -> None:
    assert parse_config("").localnet == LocalnetSettings()
    config = parse_config(
        """
[localnet]
vaults = 2
slot_ms = 100
manual_clock = true

[[tokens]]
symbol = "USDC"
stable = true

[[tokens]]
symbol = "WIF"
decimals = 6

[[localnet.markets]]
symbol = "USDC"
vault_balance = 50.0

[[localnet.markets]]
symbol = "WIF"
price_usd = 2.5
volatility = 1.5
depth_usd = 300000.0
"""
    )
    settings = config.localnet
    assert dataclasses.replace(settings, markets=()).manual_clock
    g = build_genesis(settings, config.token_registry())
    assert [t.symbol for t in g.tokens] == ["USDC", "WIF"]
    assert g.token("USDC").vault_amount == 50_000_000
    assert g.token("WIF").market_maker_amount == 10 * 300_000 * 10**6 // 2.5
