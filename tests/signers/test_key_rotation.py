"""`xorj-actors keys rotate` for real: SoftHSM2 keys funded on the localnet, moved over JSON-RPC,
renamed in the token; crashes in the middle, then a re-run that finishes; refusals that change
nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from solders.pubkey import Pubkey

from xorj_actors.cli import main as cli_main
from xorj_actors.data_dir import lock_data_dir
from xorj_actors.localnet import Localnet
from xorj_actors.localnet.settings import MarketSettings
from xorj_actors.signers import KmsSettings, Pkcs11Settings, SignerError
from xorj_actors.signers import _kms, _pkcs11, _rotation
from xorj_actors.signers._rotation import JsonRpc, MoveError
from solders.account import Account
from solders.token.state import Mint, TokenAccount, TokenAccountState

from xorj_actors.programs import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from xorj_actors.tokens import vault_token_account
from tests.plugins.localnet import start_localnet
from tests.plugins.softhsm import SoftHsmToken
from tests.signers.conftest import VAULTS, created
from tests.terminal import frames, stderr_on_a_terminal

#: Several tokens with a balance, and SOL's account empty (an empty account is closed too).
MARKETS = (
    MarketSettings("USDC", 1.0, 0.0, 5_000_000.0, vault_balance=10_000.0),
    MarketSettings("JUP", 0.85, 0.0, 2_000_000.0, vault_balance=250.5),
    MarketSettings("BONK", 0.000025, 0.0, 1_000_000.0, vault_balance=1_000_000.0),
    MarketSettings("SOL", 150.0, 0.0, 10_000_000.0),
)
FEE = 5_000  # lamports per signature, on the localnet as on mainnet


@dataclass
class Rig:
    """Two vaults whose SoftHSM keys the localnet's genesis funded, and the config rotating them."""

    ln: Localnet
    rpc: JsonRpc
    open_keys: Callable[[], Any]  # the store's rotation calls
    keys: dict[str, Pubkey]
    config: Path
    data_dir: Path
    label_prefix: str = ""

    def keys_cli(self, action: str, *extra: str) -> int:
        argv = ["keys", action, "--config", str(self.config), "--data-dir", str(self.data_dir), *extra]
        if action == "rotate":
            argv += ["--rpc", self.ln.urls["rpc"]]
        return cli_main(argv)

    def holdings(self, owner: Pubkey) -> dict[str, int]:
        """mint -> amount of every token account ``owner`` owns."""
        return {str(h.mint): h.amount for h in _rotation.chain_holdings(self.rpc, owner)}

    def lamports(self, key: Pubkey) -> int:
        return self.rpc.value("getBalance", [str(key), {"commitment": "finalized"}])

    def state(self, vault: str) -> tuple[Pubkey | None, Pubkey | None, bool]:
        keys = self.open_keys()
        try:
            return keys.state(vault)
        finally:
            keys.close()


def make_rig(tmp_path: Path, keys: dict[str, Pubkey], store_toml: str, open_keys: Callable[[], Any]) -> Rig:
    config = tmp_path / "engine.toml"
    config.write_text(f'[vaults]\ncount = 2\n[[signers.keys]]\nname = "vault-authority"\n{store_toml}')
    ln = start_localnet(
        manual_clock=False, slot_ms=20, vaults=2, vault_authorities=tuple(str(keys[v]) for v in VAULTS), markets=MARKETS
    )
    return Rig(ln, JsonRpc(ln.urls["rpc"]), open_keys, keys, config, tmp_path / "var")


@pytest.fixture
def rig(tmp_path: Path, softhsm_token: SoftHsmToken, hsm_key_label: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    settings = Pkcs11Settings(softhsm_token.module, softhsm_token.label, hsm_key_label, softhsm_token.pin_env)
    keys = created(_pkcs11.init_keys(settings, softhsm_token.environ, VAULTS))
    monkeypatch.setenv(softhsm_token.pin_env, softhsm_token.pin)
    toml = f'backend = "pkcs11"\n{softhsm_token.settings_toml(hsm_key_label)}'
    r = make_rig(tmp_path, keys, toml, lambda: _pkcs11.Pkcs11Rotation(settings, softhsm_token.environ))
    r.label_prefix = hsm_key_label
    try:
        yield r
    finally:
        r.ln.stop()


def trail(rig: Rig, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    argv = ["audit", "export", "--config", str(rig.config), "--data-dir", str(rig.data_dir), "--type", "KEY_OPERATION"]
    assert cli_main(argv) == 0
    return [json.loads(line)["details"] for line in capsys.readouterr().out.splitlines()]


def printed(out: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in out.splitlines() if line.startswith("vault-"))


def rent_of_accounts(rig: Rig, owner: Pubkey) -> int:
    """The lamports in ``owner``'s token accounts (their rent)."""
    return sum(
        rig.rpc.value("getBalance", [str(h.address), {"commitment": "finalized"}])
        for h in _rotation.chain_holdings(rig.rpc, owner)
    )


def assert_rotated(rig: Rig, old: Pubkey, new: Pubkey, before: dict[str, int], lamports: int, txs: int) -> None:
    """(``lamports``: the old key's own and its token accounts', before.)"""
    """The new key's ATAs hold exactly what the old key held; the old key holds nothing at all."""
    assert rig.holdings(old) == {} and rig.lamports(old) == 0
    held = _rotation.chain_holdings(rig.rpc, new)
    assert {str(h.mint): h.amount for h in held} == before
    assert all(h.address == vault_token_account(new, h.mint, h.program) for h in held)  # its ATAs
    # Every lamport (the key's own, its accounts' rent) is the new key's or its new ATAs', but the fees.
    assert rig.lamports(new) + rent_of_accounts(rig, new) == lamports - FEE * txs
    assert rig.state("vault-0000") == (new, None, False)


def place_token_2022(rig: Rig, owner: Pubkey, amount: int) -> Pubkey:
    """A Token-2022 mint and ``owner``'s associated account of it holding ``amount``, placed in
    the chain as genesis places its accounts (the other token program's accounts move too)."""
    mint = Pubkey.new_unique()
    account = vault_token_account(owner, mint, TOKEN_2022_PROGRAM_ID)

    def place() -> None:
        chain = rig.ln.server.chain
        for address, data in (
            (mint, bytes(Mint(None, amount, 2, True))),
            (account, bytes(TokenAccount(mint, owner, amount, None, TokenAccountState.Initialized, None, 0))),
        ):
            rent = chain.svm.minimum_balance_for_rent_exemption(len(data))
            chain.svm.set_account(address, Account(rent, data, TOKEN_2022_PROGRAM_ID, False, 0))

    rig.ln.call(place)
    return mint


def test_rotation_moves_every_token_and_lamport_then_renames(rig: Rig, capsys) -> None:
    old, other = rig.keys["vault-0000"], rig.keys["vault-0001"]
    mint_2022 = place_token_2022(rig, old, 12_345)
    own = rig.lamports(old)
    before, lamports = rig.holdings(old), own + rent_of_accounts(rig, old)
    assert len([a for a in before.values() if a]) == 4 and len(before) == 5 and before[str(mint_2022)] == 12_345
    untouched = (rig.holdings(other), rig.lamports(other))

    assert rig.keys_cli("rotate", "--vaults", "0") == 0
    new = Pubkey.from_string(printed(capsys.readouterr().out)["vault-0000"])
    assert new != old
    assert_rotated(rig, old, new, before, lamports, txs=len(before) + 1)
    assert (rig.holdings(other), rig.lamports(other)) == untouched

    assert rig.keys_cli("show", "--vaults", "0,1") == 0
    assert printed(capsys.readouterr().out) == {"vault-0000": str(new), "vault-0001": str(other)}
    steps = [(d["step"], d["vault"]) for d in trail(rig, capsys) if d["what"] == "rotate"]
    assert steps == [("started", "vault-0000"), ("pending_key", "vault-0000")] + [("moved", "vault-0000")] * 6 + [
        ("rotated", "vault-0000")
    ]
    done = [d for d in trail(rig, capsys) if d["what"] == "rotate"]
    assert done[0]["old_public_key"] == str(old) and done[1]["new_public_key"] == str(new)
    assert {d["mint"]: int(d["amount"]) for d in done[2:7]} == before
    assert {d["program"] for d in done[2:7]} == {str(TOKEN_PROGRAM_ID), str(TOKEN_2022_PROGRAM_ID)}
    # Last, every lamport left after the token moves (their fees, the new ATAs' rent) but the fee.
    assert int(done[7]["fee"]) == FEE
    assert int(done[7]["lamports"]) == own - FEE * len(before) - rent_of_accounts(rig, new) - FEE
    assert done[8]["old_public_key"] == str(old) and done[8]["new_public_key"] == str(new)
    assert done[8]["signatures"] == [d["signature"] for d in done[2:8]]
    assert done[8]["retired_name"].startswith(f"{rig.label_prefix}vault-0000.retired.")


def test_a_crash_mid_move_and_mid_rename_then_a_rerun_finishes_moving_nothing_twice(
    rig: Rig, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = rig.keys["vault-0000"]
    before, lamports = rig.holdings(old), rig.lamports(old) + rent_of_accounts(rig, old)
    sends = []
    real_call = JsonRpc.call

    def second_send_dies(self: JsonRpc, method: str, params: list) -> object:
        if method == "sendTransaction":
            sends.append(params)
            if len(sends) == 2:
                raise MoveError("sendTransaction: connection reset (the crash)")
        return real_call(self, method, params)

    monkeypatch.setattr(JsonRpc, "call", second_send_dies)
    assert rig.keys_cli("rotate", "--vaults", "0") == 1
    assert "the crash" in capsys.readouterr().err
    monkeypatch.setattr(JsonRpc, "call", real_call)
    _, pending, swapping = rig.state("vault-0000")
    assert pending is not None and not swapping
    assert len(rig.holdings(old)) == len(before) - 1  # the first account moved, and only it

    real_retired = _pkcs11._retired

    def rename_dies(session: object, label: str) -> object:  # after the old public half was relabelled
        raise SignerError("pkcs11: token removed (the crash)")

    monkeypatch.setattr(_pkcs11, "_retired", rename_dies)
    assert rig.keys_cli("rotate", "--vaults", "0") == 1
    monkeypatch.setattr(_pkcs11, "_retired", real_retired)
    assert rig.holdings(old) == {} and rig.lamports(old) == 0  # moved; the rename did not finish
    assert rig.state("vault-0000") == (None, pending, True)

    assert rig.keys_cli("rotate", "--vaults", "0") == 0
    assert printed(capsys.readouterr().out) == {"vault-0000": str(pending)}
    assert_rotated(rig, old, pending, before, lamports, txs=len(before) + 1)

    done = [d for d in trail(rig, capsys) if d["what"] == "rotate"]
    assert [d["step"] for d in done] == (
        ["started", "pending_key", "moved", "failed"]
        + ["started", "pending_key"] + ["moved"] * 4 + ["failed"]
        + ["rotated"]
    )
    assert done[1]["reused"] is False and done[5]["reused"] is True
    moved = [d for d in done if d["step"] == "moved"]
    accounts = [d["account"] for d in moved if "account" in d]
    assert len(accounts) == len(set(accounts)) == len(before)  # every account moved exactly once
    assert done[-1]["old_public_key"] == str(old) and done[-1]["signatures"] == []


def test_refusals_change_nothing(rig: Rig, capsys, tmp_path: Path) -> None:
    old = rig.keys["vault-0000"]
    before, lamports = rig.holdings(old), rig.lamports(old)
    rig.data_dir.mkdir(mode=0o700)
    lock = lock_data_dir(rig.data_dir)  # the engine is running
    try:
        assert rig.keys_cli("rotate", "--vaults", "0") == 1
        assert "stop the engine first" in capsys.readouterr().err
    finally:
        os.close(lock)
    assert rig.keys_cli("rotate", "--vaults", "5") == 2
    assert "unknown vault vault-0005" in capsys.readouterr().err
    assert rig.keys_cli("rotate") == 2
    assert "--vaults" in capsys.readouterr().err
    no_rpc = ["keys", "rotate", "--config", str(rig.config), "--data-dir", str(rig.data_dir), "--vaults", "0"]
    assert cli_main(no_rpc) == 2
    assert "no RPC" in capsys.readouterr().err
    down = no_rpc + ["--rpc", "http://127.0.0.1:9"]
    assert cli_main(down) == 1
    assert "does not answer" in capsys.readouterr().err
    other = tmp_path / "other.toml"
    other.write_text(rig.config.read_text().replace(f'label_prefix = "{rig.label_prefix}"', 'label_prefix = "none-"'))
    argv = ["keys", "rotate", "--config", str(other), "--data-dir", str(rig.data_dir), "--vaults", "0"]
    assert cli_main([*argv, "--rpc", rig.ln.urls["rpc"]]) == 1
    assert "no key for vault-0000" in capsys.readouterr().err

    assert rig.state("vault-0000") == (old, None, False)
    assert rig.holdings(old) == before and rig.lamports(old) == lamports
    refused = [d for d in trail(rig, capsys) if d["what"] == "rotate"]
    assert [d["outcome"] for d in refused] == ["refused"] * 3 and not any("step" in d for d in refused)


def test_dev_key_stores_are_refused(tmp_path: Path, capsys) -> None:
    config = tmp_path / "engine.toml"
    config.write_text("[vaults]\ncount = 2\n")
    argv = ["keys", "rotate", "--config", str(config), "--data-dir", str(tmp_path / "var"), "--vaults", "0"]
    assert cli_main([*argv, "--rpc", "http://127.0.0.1:9"]) == 1
    assert "derived from a seed" in capsys.readouterr().err


def test_kms_rotation_retargets_the_alias_disables_the_old_key_and_survives_a_crash(
    tmp_path: Path, kms_settings: KmsSettings, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = created(_kms.init_keys(kms_settings, VAULTS))
    toml = f'backend = "kms"\nkms.alias_prefix = "{kms_settings.alias_prefix}"\nkms.endpoint_url = "{kms_settings.endpoint_url}"\n'
    rig = make_rig(tmp_path, keys, toml, lambda: _kms.KmsRotation(kms_settings))
    try:
        old = keys["vault-0000"]
        before, lamports = rig.holdings(old), rig.lamports(old) + rent_of_accounts(rig, old)
        real_call = _kms._call

        def disable_dies(what: str, fn: Any, **kwargs: Any) -> Any:  # after the alias was retargeted
            if what.startswith("DisableKey"):
                raise SignerError("kms DisableKey: connection reset (the crash)")
            return real_call(what, fn, **kwargs)

        monkeypatch.setattr(_kms, "_call", disable_dies)
        assert rig.keys_cli("rotate", "--vaults", "0") == 1
        monkeypatch.setattr(_kms, "_call", real_call)
        _, pending, swapping = rig.state("vault-0000")
        assert swapping and pending is not None
        assert rig.keys_cli("rotate", "--vaults", "0") == 0
        assert printed(capsys.readouterr().out) == {"vault-0000": str(pending)}
        assert_rotated(rig, old, pending, before, lamports, txs=len(before) + 1)

        client = _kms._client(kms_settings)
        alias = _kms.key_alias(kms_settings, "vault-0000")
        (retired,) = [a for a in client.list_aliases()["Aliases"] if a["AliasName"].startswith(f"{alias}-retired-")]
        old_meta = client.describe_key(KeyId=retired["TargetKeyId"])["KeyMetadata"]
        assert old_meta["KeyState"] == "Disabled"  # kept, never deleted
        assert _kms._public_key(client, old_meta["Arn"]) == old
        with pytest.raises(client.exceptions.NotFoundException):
            client.describe_key(KeyId=_kms.pending_alias(kms_settings, "vault-0000"))
        client.close()
        done = [d for d in trail(rig, capsys) if d["what"] == "rotate"]
        assert [d["step"] for d in done] == ["started", "pending_key"] + ["moved"] * 5 + ["failed", "rotated"]
        assert done[-1]["retired_name"] == retired["AliasName"] and done[-1]["new_public_key"] == str(pending)
    finally:
        rig.ln.stop()


def test_rotate_on_a_terminal_counts_the_vaults_in_a_bar(rig: Rig, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    with stderr_on_a_terminal(monkeypatch) as drawn:
        assert rig.keys_cli("rotate", "--vaults", "0,1") == 0
    assert set(printed(capsys.readouterr().out)) == {"vault-0000", "vault-0001"}  # stdout: the keys alone
    shown = frames(drawn[0])
    assert shown and shown[-1] == (2, 2, "0:00:00"), drawn[0][-500:]
    assert (1, 2) in {(done, total) for done, total, _ in shown}  # one vault done, the other under way
