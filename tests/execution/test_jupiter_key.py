"""With a Jupiter API key configured, every call to Jupiter carries it: the executor's quote and
route, and the RPC gateway's prices (``/price/v3``). The localnet demands the key as Jupiter
does (401 without it), so a call that forgot it fails here."""

from __future__ import annotations

import threading

import pytest

from tests.execution.test_vault_keys_engine import _Snapshots
from tests.helpers import wait_until
from xorj_actors.chain import GATEWAY_NAME, GetVaultSnapshot, VaultSnapshot

KEY_ENV = "XORJ_LOCALNET_JUPITER_API_KEY"  # [localnet.quote] api_key_env
KEY = "localnet-jupiter-key-" + "k" * 24


def test_with_a_key_configured_trades_and_prices_carry_it(exec_engine_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)  # the in-process localnet reads its key from the process
    h = exec_engine_factory(environ={KEY_ENV: KEY})
    outcome = h.execute(h.request("vault-0002:key:0", vault=2, amount=1_000_000))
    assert outcome.status == "confirmed", outcome
    got: list[VaultSnapshot] = []
    inbox = _Snapshots.start(got, threading.Lock())
    usdc, jup = (str(h.genesis.token(s).mint) for s in ("USDC", "JUP"))
    account = h.genesis.vaults[0].token_accounts["USDC"]
    h.engine.runtime.whereis(GATEWAY_NAME).tell(
        GetVaultSnapshot(vault_id="vault-0000", accounts=((usdc, str(account)),), mints=(usdc, jup), reply_to=inbox,
                         request_id="prices")
    )
    wait_until(lambda: bool(got), 10, "a snapshot")
    (snapshot,) = got
    assert snapshot.error is None, snapshot.error
    assert dict(snapshot.prices)[jup] > 0
    inbox.stop()
