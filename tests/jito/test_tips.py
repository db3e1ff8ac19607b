"""The pure pieces: the tip's size and transfer, the ``jitodontfront`` mark and its rule, ``[jito]``."""

from __future__ import annotations

import dataclasses

import pytest
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from xorj_actors.config import ConfigError, parse_config
from xorj_actors.jito import (
    JitoSettings,
    TipFloor,
    TipPercentile,
    bundle_id,
    dont_front_problem,
    tables_without,
    tip_is_static,
    tip_lamports,
    tip_transfer,
    with_dont_front,
)

MARK = Pubkey.from_string("jitodontfront111111111111111111111111111111")
TIP = Pubkey.from_string("96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5")
FLOOR = TipFloor("t", {p: v for p, v in zip(TipPercentile, (5_000, 10_000, 40_000, 2_000_000, 9_000_000, 9_000), strict=True)})


@pytest.mark.parametrize(
    ("percentile", "expected"),
    [(TipPercentile.P25, 10_000), (TipPercentile.P75, 40_000), (TipPercentile.P99, 1_000_000)],
    ids=["below-floor", "between", "above-cap"],
)
def test_the_tip_is_the_percentile_within_floor_and_cap(percentile: TipPercentile, expected: int) -> None:
    assert tip_lamports(FLOOR, percentile, 10_000, 1_000_000) == expected


@pytest.mark.parametrize(("minimum", "maximum"), [(999, 5_000), (5_000, 4_000), (-1, 5_000)])
def test_bad_tip_bounds_are_refused(minimum: int, maximum: int) -> None:
    with pytest.raises(ValueError):
        tip_lamports(FLOOR, TipPercentile.P50, minimum, maximum)


def test_the_tip_is_a_system_transfer_and_never_under_the_minimum() -> None:
    payer = Keypair().pubkey()
    ix = tip_transfer(payer, TIP, 12_345)
    assert ix.program_id == SYSTEM_PROGRAM
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in ix.accounts] == [(payer, True, True), (TIP, False, True)]
    assert int.from_bytes(bytes(ix.data)[4:12], "little") == 12_345
    with pytest.raises(ValueError):
        tip_transfer(payer, TIP, 999)


def test_a_tip_account_in_a_lookup_table_is_caught_and_avoided() -> None:
    payer = Keypair().pubkey()
    table = AddressLookupTableAccount(Keypair().pubkey(), [TIP, Keypair().pubkey()])
    other = AddressLookupTableAccount(Keypair().pubkey(), [Keypair().pubkey()])
    ix = tip_transfer(payer, TIP, 10_000)
    through_table = MessageV0.try_compile(payer, [ix], [table, other], Hash.default())
    assert not tip_is_static(through_table, TIP)
    kept = tables_without([table, other], [TIP])
    assert kept == [other]
    assert tip_is_static(MessageV0.try_compile(payer, [ix], kept, Hash.default()), TIP)


def test_the_mark_is_appended_read_only_once() -> None:
    ix = Instruction(Pubkey.new_unique(), b"\x01", [AccountMeta(Pubkey.new_unique(), True, True)])
    marked = with_dont_front(ix, MARK)
    assert marked.accounts[-1] == AccountMeta(MARK, is_signer=False, is_writable=False)
    assert marked.accounts[:-1] == ix.accounts and marked.data == ix.data
    assert with_dont_front(marked, MARK) == marked
    with pytest.raises(ValueError, match="jitodontfront"):
        with_dont_front(ix, Pubkey.new_unique())


def _tx(signer: Keypair, *, marked: bool) -> VersionedTransaction:
    ix = transfer(TransferParams(from_pubkey=signer.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=1))
    if marked:
        ix = with_dont_front(ix, MARK)
    return VersionedTransaction(MessageV0.try_compile(signer.pubkey(), [ix], [], Hash.new_unique()), [signer])


def test_the_dont_front_rule() -> None:
    us, them = Keypair(), Keypair()
    ours, attacker = _tx(us, marked=True), _tx(them, marked=False)
    assert dont_front_problem([attacker]) is None
    assert dont_front_problem([ours, attacker]) is None
    assert "transaction 1" in (dont_front_problem([attacker, ours]) or "")
    # Several marked transactions may lead, if contiguous and sharing a signer with the first.
    assert dont_front_problem([ours, _tx(us, marked=True), attacker]) is None
    assert "shares no signer" in (dont_front_problem([ours, _tx(them, marked=True)]) or "")
    assert "transaction 2" in (dont_front_problem([ours, attacker, _tx(us, marked=True)]) or "")
    # A mark loaded through a lookup table counts too.
    assert "transaction 1" in (dont_front_problem([attacker, _tx(us, marked=False)], [[], [MARK]]) or "")


def test_bundle_id_is_the_sha256_of_the_signatures_in_order() -> None:
    a, b = _tx(Keypair(), marked=False), _tx(Keypair(), marked=False)
    assert bundle_id([a, b]) != bundle_id([b, a])
    assert len(bundle_id([a])) == 64 and bundle_id([a]) == bundle_id([a])
    with pytest.raises(ValueError):
        bundle_id([])


def test_jito_is_off_by_default_and_its_settings_are_checked() -> None:
    assert parse_config("").jito == JitoSettings() and not JitoSettings().enabled
    config = parse_config('[jito]\nenabled = true\nblock_engine_url = "https://mainnet.block-engine.jito.wtf"\ntip_percentile = "ema50"\n')
    assert config.jito.tip_percentile is TipPercentile.EMA50
    for bad in (
        "tip_floor_lamports = 500",
        "tip_cap_lamports = 5000",
        'dont_front_account = "11111111111111111111111111111111"',
        'block_engine_url = "https://x/"',
        'tip_percentile = "90"',
        "status_poll_interval_s = 0.0",
        "status_poll_interval_s = nan",
        "max_tracked_bundles = 0",
    ):
        with pytest.raises(ConfigError):
            parse_config(f"[jito]\n{bad}\n")
    with pytest.raises(ValueError):
        dataclasses.replace(JitoSettings(), connect_timeout_s=9.0).validate()
