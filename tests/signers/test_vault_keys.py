"""Vault keys without a backend: the development derivation, the vault lists of `keys`, the board."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair

from xorj_actors.localnet import dev_vault_authority
from xorj_actors.signers import (
    LOCALNET_DEV_SEED,
    DevKeySettings,
    KeySettings,
    SignerError,
    VaultKeys,
    dev_vault_keypair,
    open_backend,
    parse_vault_ids,
    vault_key_board,
)


def test_dev_keys_are_derived_per_vault_and_the_default_is_the_localnets(tmp_path) -> None:
    backend = open_backend(KeySettings(), environment="development", environ={}, data_dir=tmp_path)
    keys = [backend.public_key(f"vault-000{i}") for i in range(3)]
    assert len(set(keys)) == 3  # each vault its own
    assert keys == [dev_vault_authority(i).pubkey() for i in range(3)]
    assert keys[0] == dev_vault_keypair(LOCALNET_DEV_SEED, "vault-0000").pubkey()
    with pytest.raises(SignerError, match="refused in production"):
        open_backend(KeySettings(), environment="production", environ={}, data_dir=tmp_path)


def test_a_seed_file_gives_other_keys(tmp_path) -> None:
    (tmp_path / "seed").write_text("a private development seed\n")
    key = KeySettings(dev_key=DevKeySettings(seed_file="seed"))
    backend = open_backend(key, environment="development", environ={}, data_dir=tmp_path)
    assert backend.public_key("vault-0000") == dev_vault_keypair("a private development seed", "vault-0000").pubkey()
    assert backend.public_key("vault-0000") != dev_vault_authority(0).pubkey()
    assert vault_key_board(key, tmp_path).require("vault-0000") == backend.public_key("vault-0000")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("3", ("vault-0003",)),
        ("vault-0012", ("vault-0012",)),
        ("0-2,7", ("vault-0000", "vault-0001", "vault-0002", "vault-0007")),
        ("vault-0008-vault-0009", ("vault-0008", "vault-0009")),
        ("12345", ("vault-12345",)),
    ],
)
def test_vault_lists_take_indexes_ids_and_ranges(spec: str, expected: tuple[str, ...]) -> None:
    assert parse_vault_ids(spec) == expected


@pytest.mark.parametrize(
    ("spec", "error"),
    [("", "neither"), ("x", "neither"), ("vault-1", "neither"), ("5-3", "backwards"), ("1,0-2", "twice"),
     ("0-200000", "more than")],
)
def test_bad_vault_lists_are_refused_by_name(spec: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_vault_ids(spec)


def test_the_board_never_changes_a_published_key() -> None:
    board = VaultKeys("store")
    assert board.get("vault-0000") is None
    with pytest.raises(KeyError, match="no key for vault-0000"):
        board.require("vault-0000")
    first = Keypair().pubkey()
    board.publish({"vault-0000": first})
    board.publish({"vault-0000": first})  # the same key again is fine
    with pytest.raises(ValueError, match="published"):
        board.publish({"vault-0000": Keypair().pubkey()})
    assert board.require("vault-0000") == first and tuple(board.known()) == ("vault-0000",)


def test_a_starting_vault_waits_for_its_key_once_and_not_forever() -> None:
    import threading

    board = VaultKeys("store")
    key = Keypair().pubkey()
    threading.Timer(0.05, lambda: board.publish({"vault-0000": key})).start()
    assert board.require("vault-0000", wait_s=30.0) == key  # published while it waited
    with pytest.raises(KeyError):
        board.require("vault-0001", wait_s=0.1)
    # The store did not answer: the next vault does not wait its hour (it would hang this thread).
    errors: list[BaseException] = []
    waiter = threading.Thread(target=lambda: errors.append(_raised(lambda: board.require("vault-0002", wait_s=3600))))
    waiter.start()
    waiter.join(30)
    assert not waiter.is_alive() and isinstance(errors[0], KeyError)
    board.publish({"vault-0001": Keypair().pubkey()})  # the store is back: waits are allowed again
    threading.Timer(0.05, lambda: board.publish({"vault-0002": key})).start()
    assert board.require("vault-0002", wait_s=30.0) == key


def _raised(fn) -> BaseException | None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
        return exc
    return None
