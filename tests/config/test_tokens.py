"""The token registry: one [[tokens]] list, read by the engine and the localnet alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from xorj_actors.config import Config, ConfigError, load_config, parse_config
from xorj_actors.localnet import build_genesis, dev_vault_authority
from xorj_actors.signers import KeySettings, vault_key_board
from xorj_actors.tokens import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    TokenRegistry,
    TokenSettings,
    derived_mint,
    vault_token_account,
)

#: The mints `make run` has always traded (derived from the default seed, "xorj-localnet").
LOCAL_MINTS = {
    "USDC": "3qJRCR3nQi62BnTJBbn4pkdwREp2jeFhB9zNDP6icqtU",
    "JUP": "3cjGm34mEgKYADW5CBJbvD5FdYhtpd59z4ZtiUCFfwV4",
    "BONK": "E58q22yzTjxtyz9w29NeZW5SneJ1FbmgdJ1QYr3dZ959",
    "SOL": "DhvCE42u7QN1jQfNQgL89GnhCP8R9SA4AYZ7h3nJA6xV",
}


@pytest.mark.parametrize("config", [Config(), load_config(Path(__file__).parents[2] / "config" / "local.toml")], ids=["defaults", "local.toml"])
def test_the_defaults_and_make_run_keep_their_tokens_and_mints(config: Config) -> None:
    registry = config.token_registry()
    assert {t.symbol: str(t.mint) for t in registry} == LOCAL_MINTS
    assert [t.decimals for t in registry] == [6, 6, 5, 9]
    assert registry.stable.symbol == "USDC"
    genesis = build_genesis(config.localnet, registry)
    assert [(t.symbol, t.mint, t.decimals, t.stable) for t in genesis.tokens] == [
        (t.symbol, t.mint, t.decimals, t.stable) for t in registry
    ]


def test_lookups_by_mint_and_symbol() -> None:
    registry = Config().token_registry()
    bonk = registry.by_symbol("BONK")
    assert registry.by_mint(bonk.mint) is registry.by_mint(str(bonk.mint)) is bonk
    assert registry.decimals()[str(bonk.mint)] == 5 and registry.decimals() is registry.decimals()
    for missing in ("DOGE", str(Pubkey.default())):
        with pytest.raises(KeyError):
            registry.by_mint(missing)
        with pytest.raises(KeyError):
            registry.by_symbol(missing)
    with pytest.raises(KeyError):
        registry.by_mint("BONK")  # a symbol is not a mint
    with pytest.raises(KeyError):
        registry.by_symbol(str(bonk.mint))  # nor a mint a symbol


def test_a_configured_mint_is_used_and_the_localnet_mints_it() -> None:
    mint = str(Keypair().pubkey())
    config = parse_config(f'[[tokens]]\nsymbol = "USDC"\nstable = true\nmint = "{mint}"\n[[tokens]]\nsymbol = "WIF"\n')
    registry = config.token_registry()
    assert str(registry.by_symbol("USDC").mint) == mint
    assert registry.by_symbol("WIF").mint == derived_mint(config.localnet.seed, "WIF")
    assert build_genesis(config.localnet, registry).token("USDC").mint == Pubkey.from_string(mint)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[[tokens]]\nsymbol = 'USDC'\nstable = true\n[[tokens]]\nsymbol = 'USDC'", "tokens: symbols must be distinct"),
        ("[[tokens]]\nsymbol = 'A'\nstable = true\nmint = '{m}'\n[[tokens]]\nsymbol = 'B'\nmint = '{m}'", "tokens: mints must be distinct"),
        ("[[tokens]]\nsymbol = 'USDC'\nstable = true\nmint = 'nope'", r"tokens\[0\].mint: not a base58 public key"),
        ("[[tokens]]\nsymbol = 'USDC'\nstable = true\ndecimals = 13", r"tokens\[0\].decimals"),
        ("[[tokens]]\nsymbol = 'USDC'\nstable = true\nprice_usd = 1.0", r"tokens\[0\].price_usd: unknown key"),
    ],
)
def test_bad_tokens_name_the_key(toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(toml.format(m=Keypair().pubkey()))


def test_settings_built_in_code_are_checked_when_the_registry_is_built() -> None:
    with pytest.raises(ValueError, match="exactly one token"):
        TokenRegistry.from_settings((TokenSettings("USDC"),))


@pytest.mark.parametrize("program", [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID], ids=["spl-token", "token-2022"])
def test_vault_accounts_are_the_authoritys_associated_token_accounts(program: Pubkey) -> None:
    authority, mint = Keypair().pubkey(), Keypair().pubkey()
    # The ATA program's derivation: seeds (owner, token program, mint).
    expected, _ = Pubkey.find_program_address([bytes(authority), bytes(program), bytes(mint)], ASSOCIATED_TOKEN_PROGRAM_ID)
    assert vault_token_account(authority, mint, program) == expected
    assert vault_token_account(Keypair().pubkey(), mint, program) != expected  # another vault, another account


def test_the_engines_development_keys_are_the_localnets_vault_authorities() -> None:
    board = vault_key_board(KeySettings(), Path("."))
    genesis = build_genesis(Config().localnet)
    for vault in genesis.vaults:
        assert board.require(vault.vault_id) == vault.authority == dev_vault_authority(vault.index).pubkey()
    assert len({v.authority for v in genesis.vaults}) == len(genesis.vaults)  # each vault its own
