"""Signer actors in a running engine, one per backend: signing, the halt discipline, health."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable

import pytest
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from supervisors import Ref
from xorj_actors.config import parse_config
from xorj_actors.engine import Engine
from xorj_actors.kill_switch import KILL_SWITCH_NAME, HaltBoard, HaltStatus, Recover
from xorj_actors.messages import HaltMode, Trigger
from xorj_actors.signers import GetSignerHealth, Signer, SignerHealth, SignRequest, SignResult, VaultKeys
from xorj_actors.tokens import vault_token_account
from tests.plugins.engine import RECOVERY_KEYS, authorise, ks_status, wait_until
from tests.signers.conftest import VAULTS, KeyCase, assert_valid_solana_signature, transfer_message


def start(engine_factory: Callable[..., Engine], key: KeyCase, vaults: int = 1) -> tuple[Engine, Ref]:
    engine = engine_factory(vaults=vaults, environ={**RECOVERY_KEYS, **key.environ}, extra=key.toml())
    (signer,) = [a.ref for a in engine.runtime.actors(named=lambda name: name == "signer:vault-authority")]
    return engine, signer


def sign(signer: Ref, payload: bytes, trade_id: str = "t-1", vault: str = VAULTS[0]) -> SignResult:
    return signer.ask(SignRequest(trade_id=trade_id, vault_id=vault, payload=payload), timeout=10)


def message_bytes(message: MessageV0) -> bytes:
    return to_bytes_versioned(message)


def health(signer: Ref) -> SignerHealth:
    return signer.ask(GetSignerHealth(), timeout=5)


def test_every_backend_signs_a_valid_solana_transaction(engine_factory, signing_key: KeyCase) -> None:
    _, signer = start(engine_factory, signing_key)
    message = transfer_message(signing_key.public_key)
    result = sign(signer, message_bytes(message), "trade-42")
    assert result.trade_id == "trade-42" and result.refused is None
    assert_valid_solana_signature(message, result.signature)
    h = health(signer)
    assert (h.key_name, h.backend, h.vault_keys, h.ready) == ("vault-authority", signing_key.backend, 1, True)
    assert h.ok and h.error is None and not h.halted
    assert (h.signed, h.errors, h.refused) == (1, 0, 0)


def test_each_vault_is_signed_for_by_its_own_key_only(engine_factory, signing_key: KeyCase) -> None:
    engine, signer = start(engine_factory, signing_key, vaults=2)
    for vault in VAULTS:
        message = transfer_message(signing_key.keys[vault])
        assert_valid_solana_signature(message, sign(signer, message_bytes(message), vault=vault).signature)
    # vault-0001's key does not sign a message that vault-0000's authority must sign.
    other = sign(signer, message_bytes(transfer_message(signing_key.keys[VAULTS[0]])), vault=VAULTS[1]).signature
    tx = VersionedTransaction.populate(transfer_message(signing_key.keys[VAULTS[0]]), [Signature.from_bytes(other)])
    assert tx.verify_with_results() == [False]
    # The engine's vaults hold their own authority's associated token accounts.
    for vault in VAULTS:
        (actor,) = [m.actor for m in engine.runtime.mailboxes() if m.name == vault]
        assert {account for _, account in actor.accounts} == {
            str(vault_token_account(signing_key.keys[vault], Pubkey.from_string(mint))) for mint, _ in actor.accounts
        }


@pytest.mark.parametrize("signing_key", ["pkcs11", "kms"], indirect=True)  # dev keys exist for any vault
def test_a_vault_without_a_key_is_refused_and_the_rest_still_sign(engine_factory, signing_key: KeyCase) -> None:
    _, signer = start(engine_factory, signing_key)
    result = sign(signer, message_bytes(transfer_message(signing_key.public_key)), vault="vault-0099")
    assert result.signature is None and "vault-0099" in result.refused
    message = transfer_message(signing_key.public_key)
    assert_valid_solana_signature(message, sign(signer, message_bytes(message)).signature)


def test_a_halt_refuses_every_request_until_recovery(engine_factory, signing_key: KeyCase) -> None:
    engine, signer = start(engine_factory, signing_key)
    payload = message_bytes(transfer_message(signing_key.public_key))
    engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.GRACEFUL, reason="test", source="test"))
    wait_until(lambda: ks_status(engine).complete and ks_status(engine).state == "TRIGGERED", what="halt acked")
    assert "signer:vault-authority" in ks_status(engine).acked
    for i in range(3):
        result = sign(signer, payload, f"t-{i}")
        assert result.signature is None and result.refused.startswith("halted")
    h = health(signer)
    assert h.halted and (h.signed, h.refused) == (0, 3)

    outcome = engine.runtime.whereis(KILL_SWITCH_NAME).ask(
        Recover(operator="test", **authorise(ks_status(engine).epoch)), timeout=5
    )
    assert outcome.accepted, outcome.reason
    wait_until(lambda: not health(signer).halted, what="signer resumed")
    message = transfer_message(signing_key.public_key)
    assert_valid_solana_signature(message, sign(signer, message_bytes(message)).signature)


def test_a_vault_beyond_the_configured_ones_is_found_on_first_use(engine_factory, signing_key: KeyCase) -> None:
    _, signer = start(engine_factory, signing_key, vaults=1)  # only vault-0000 is required at start
    assert health(signer).vault_keys == 1
    message = transfer_message(signing_key.keys[VAULTS[1]])
    assert_valid_solana_signature(message, sign(signer, message_bytes(message), vault=VAULTS[1]).signature)
    assert health(signer).vault_keys == 2


def test_bad_requests_are_refused_and_counted(engine_factory, key_dev_key: KeyCase) -> None:
    _, signer = start(engine_factory, key_dev_key)
    result = sign(signer, b"")
    assert result.signature is None and "empty payload" in result.refused
    assert health(signer).refused == 1


def test_operations_reach_the_hsm_metric(engine_factory, key_dev_key: KeyCase) -> None:
    engine, signer = start(engine_factory, key_dev_key)
    sign(signer, message_bytes(transfer_message(key_dev_key.public_key)))
    sign(signer, b"")
    with urllib.request.urlopen(engine.endpoints()["http"] + "/metrics", timeout=5) as reply:
        text = reply.read().decode()
    assert 'xorj_hsm_operations_total{backend="dev_key",result="ok"} 1.0' in text
    assert 'xorj_hsm_operations_total{backend="dev_key",result="refused"} 1.0' in text
    assert 'xorj_hsm_operations_total{backend="pkcs11",result="ok"} 0.0' in text


def test_many_threads_signing_at_once_through_the_pkcs11_signer_all_succeed(
    engine_factory, key_pkcs11: KeyCase
) -> None:
    # python-pkcs11 with SoftHSM crashes when two threads sign at once: the actor's one thread
    # must serialise every request, whoever sends it.
    _, signer = start(engine_factory, key_pkcs11)
    threads, per_thread = 8, 40
    message = transfer_message(key_pkcs11.public_key)
    payload = message_bytes(message)
    results: list[SignResult] = []
    lock = threading.Lock()
    go = threading.Barrier(threads)

    def client(n: int) -> None:
        go.wait()
        requests = [SignRequest(trade_id=f"{n}-{i}", vault_id=VAULTS[0], payload=payload) for i in range(per_thread)]
        futures = [signer.ask(r, block=False) for r in requests]
        got = [f.get(timeout=30) for f in futures]
        with lock:
            results.extend(got)

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert len(results) == threads * per_thread
    assert len({r.trade_id for r in results}) == threads * per_thread
    for r in results:
        assert r.refused is None, r.refused
        assert_valid_solana_signature(message, r.signature)
    assert health(signer).signed == threads * per_thread



class _TimedBoard(HaltBoard):
    """A real halt board that notes the wall clock of every read (a probe: it changes nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []

    @property
    def status(self) -> HaltStatus:
        self.reads.append(time.time_ns())
        return super().status


def test_a_signature_carries_the_signers_time_taken_before_the_board_and_the_epoch_it_checked(
    runtime, key_dev_key: KeyCase
) -> None:
    # Issue 11 item 6: the audit log can prove a signature predates a halt only if the signer's
    # time is taken before it reads the board (the halt is recorded after the board shows it).
    board = _TimedBoard()
    board.publish(HaltStatus(state="ARMED", epoch=3, halted=False, factor=1.0))
    key = parse_config(key_dev_key.toml()).signers.keys[0]
    signer = Signer.start(board, key, VaultKeys(key.name))
    message = transfer_message(key_dev_key.public_key)
    result = sign(signer, message_bytes(message))
    assert_valid_solana_signature(message, result.signature)
    assert (result.halt_epoch, result.halt_state) == (3, "ARMED")
    assert 0 < result.signed_at_ns <= board.reads[-1], "the signer read the board before its clock"

    board.publish(HaltStatus(state="TRIGGERED", epoch=4, halted=True, factor=0.0))
    refused = sign(signer, message_bytes(message))
    assert refused.signature is None and refused.refused.startswith("halted")


def test_a_cluster_signer_signs_only_under_the_lease_holding_the_trade_began_under(runtime, key_dev_key: KeyCase) -> None:
    # The executor checks the fence before it asks; the signer checks it again right before the
    # key signs, so a node paused in between signs nothing once the lease is gone.
    from xorj_actors.cluster import Fence, LeaseClock, LeaseGrant

    board = HaltBoard()
    board.publish(HaltStatus(state="ARMED", epoch=1, halted=False, factor=1.0))
    fence = Fence(LeaseClock(ttl_s=10.0, margin_s=3.0, renew_every_s=2.0))
    key = parse_config(key_dev_key.toml()).signers.keys[0]
    signer = Signer.start(board, key, VaultKeys(key.name), fence=fence.fence)
    vault = VAULTS[0]
    payload = message_bytes(transfer_message(key_dev_key.public_key))

    def ask(tenure: int) -> SignResult:
        return signer.ask(SignRequest(trade_id="t", vault_id=vault, payload=payload, lease_tenure=tenure), timeout=10)

    not_held = ask(0)
    assert not_held.signature is None and not_held.refused.startswith("fenced") and "does not hold" in not_held.refused
    fence.grant(LeaseGrant(vault, 7, time.monotonic(), "me"))
    tenure = fence.fence(vault).tenure  # type: ignore[union-attr]
    assert ask(tenure).signature is not None
    fence.grant(LeaseGrant(vault, 8, time.monotonic(), "me"))  # a renewal: the same holding
    assert ask(tenure).signature is not None
    fence.revoke(vault)
    fence.grant(LeaseGrant(vault, 12, time.monotonic(), "me"))  # lost, then taken again
    again = ask(tenure)
    assert again.signature is None and "taken again" in again.refused
    expired = Fence(LeaseClock(ttl_s=10.0, margin_s=3.0, renew_every_s=2.0))
    expired.grant(LeaseGrant(vault, 9, time.monotonic() - 8.0, "me"))  # past its deadline
    late = Signer.start(board, key, VaultKeys(key.name), fence=expired.fence)
    refused = late.ask(SignRequest(trade_id="t", vault_id=vault, payload=payload, lease_tenure=1), timeout=10)
    assert refused.signature is None and refused.refused.startswith("fenced")
    assert signer.ask(GetSignerHealth(), timeout=5).signed == 2
