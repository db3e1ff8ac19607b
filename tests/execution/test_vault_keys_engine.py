"""Each vault its own key, end to end: HSM vault keys on the localnet, the wallet names the
vault, the RPC gateway reads each vault's own accounts."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable

from solders.transaction import VersionedTransaction

from supervisors import Actor
from tests.helpers import wait_until
from tests.execution.conftest import Harness
from xorj_actors.chain import GATEWAY_NAME, GetVaultSnapshot, VaultSnapshot
from xorj_actors.signers import GetSignerHealth, Pkcs11Settings, _pkcs11

VAULTS = ("vault-0000", "vault-0001", "vault-0002", "vault-0003")


def test_hsm_vault_keys_trade_their_own_vault_on_the_localnet(
    exec_engine_factory: Callable[..., Harness], softhsm_token, hsm_key_label
) -> None:
    settings = Pkcs11Settings(softhsm_token.module, softhsm_token.label, hsm_key_label, softhsm_token.pin_env)
    keys = {v: pk for v, pk, _ in _pkcs11.init_keys(settings, softhsm_token.environ, VAULTS)}
    authorities = ", ".join(f'"{keys[v]}"' for v in VAULTS)
    h = exec_engine_factory(
        f'[localnet]\nvault_authorities = [{authorities}]\n'
        f'[[signers.keys]]\nname = "hsm"\nbackend = "pkcs11"\n{softhsm_token.settings_toml(hsm_key_label)}',
        environ=softhsm_token.environ,
    )
    assert [v.authority for v in h.genesis.vaults] == [keys[v] for v in VAULTS]
    signer = h.engine.runtime.whereis("signer:hsm")
    assert signer.ask(GetSignerHealth(), timeout=5).vault_keys == 0  # [vaults] count = 0: none loaded at start

    usdc0, usdc2 = h.balance(0, "USDC"), h.balance(2, "USDC")
    outcome = h.execute(h.request("vault-0002:r1:0", vault=2, amount=5_000_000))
    assert outcome.status == "confirmed", outcome
    assert h.balance(2, "USDC") == usdc2 - 5_000_000 and h.balance(0, "USDC") == usdc0  # only vault 2 moved
    # The executor found vault 2's key by asking the signer; vault 2's key alone signed and paid.
    assert signer.ask(GetSignerHealth(), timeout=5).vault_keys == 1
    (signed,) = [d for k, d in h.entries("vault-0002:r1:0") if d.get("phase") == "signed"]
    tx = VersionedTransaction.from_bytes(base64.b64decode(signed["transaction"]))
    assert tx.message.account_keys[0] == keys["vault-0002"]  # the fee payer: the vault's own authority
    assert keys["vault-0000"] not in tx.message.account_keys


class _Snapshots(Actor):
    def __init__(self, got: list[VaultSnapshot], lock: threading.Lock) -> None:
        super().__init__()
        self.got, self.lock = got, lock

    def on_receive(self, message: object) -> None:
        if isinstance(message, VaultSnapshot):
            with self.lock:
                self.got.append(message)


def test_the_gateway_reads_each_vaults_own_accounts_and_refuses_anothers(harness: Harness) -> None:
    h = harness
    got: list[VaultSnapshot] = []
    lock = threading.Lock()
    inbox = _Snapshots.start(got, lock)
    usdc = str(h.genesis.token("USDC").mint)
    own = h.genesis.vaults[0].token_accounts["USDC"]
    other = h.genesis.vaults[1].token_accounts["USDC"]
    gateway = h.engine.runtime.whereis(GATEWAY_NAME)
    for request_id, account in (("own", own), ("other", other)):
        gateway.tell(
            GetVaultSnapshot(vault_id="vault-0000", accounts=((usdc, str(account)),), mints=(usdc,), reply_to=inbox,
                             request_id=request_id)
        )
    wait_until(lambda: len(got) == 2, 10, "two snapshots")
    by_id = {s.request_id: s for s in got}
    assert by_id["own"].error is None and dict(by_id["own"].balances)[usdc] == h.balance(0, "USDC")
    assert by_id["other"].error is not None and f"for {h.genesis.vaults[1].authority}" in by_id["other"].error
    inbox.stop()
