"""Helpers for the Confirmation tests: a runtime, an inbox actor, sending swaps to a localnet."""

from __future__ import annotations

import base64
import dataclasses
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from solders.hash import Hash
from solders.transaction import VersionedTransaction

from supervisors import Actor, Message, Ref, Runtime
from tests.helpers import wait_until
from xorj_actors.chain import (
    Confirmation,
    ConfirmationHealth,
    ConfirmationSettings,
    GetConfirmationHealth,
    GetWatches,
    SignatureOutcome,
    Tier,
    WatchRefused,
    WatchSignature,
    WatchState,
)
from xorj_actors.kill_switch import HaltBoard, HaltStatus
from xorj_actors.localnet import Localnet

#: Short waits everywhere: tests must not depend on production timings.
FAST = ConfirmationSettings(
    reconnect_initial_s=0.02,
    reconnect_max_s=0.2,
    slot_stall_s=2.0,
    poll_interval_s=0.2,
    http_timeout_s=2.0,
    connect_timeout_s=2.0,
)


def running_board() -> HaltBoard:
    board = HaltBoard()
    board.publish(HaltStatus(state="RUNNING", epoch=0, halted=False, factor=1.0))
    return board


class GetReceived(Message):
    """Ask an :class:`Inbox` for what it was told so far (a tuple, oldest first)."""


class Inbox(Actor):
    """Keeps every message it is told (the executor's side of the protocol)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if type(message) is GetReceived:
            return tuple(self.messages)
        self.messages.append(message)
        return None


class Client:
    """An inbox actor and what it received, asked from the test thread."""

    def __init__(self) -> None:
        self.ref: Ref = Inbox.start()

    def received(self, kind: type = Message) -> list[Any]:
        return [m for m in self.ref.ask(GetReceived(), timeout=5) if isinstance(m, kind)]

    def outcomes(self) -> dict[str, SignatureOutcome]:
        return {o.signature: o for o in self.received(SignatureOutcome)}

    def wait_outcome(self, signature: str, timeout: float = 10.0) -> SignatureOutcome:
        wait_until(lambda: signature in self.outcomes(), timeout, what=f"the outcome of {signature}")
        return self.outcomes()[signature]

    def wait_count(self, kind: type, count: int, timeout: float = 10.0) -> list[Any]:
        wait_until(lambda: len(self.received(kind)) >= count, timeout, what=f"{count} {kind.__name__}")
        return self.received(kind)

    def refusals(self) -> list[WatchRefused]:
        return self.received(WatchRefused)


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return Client()


def rpc(localnet: Localnet, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(str(localnet.urls["rpc"]), data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        reply = json.loads(resp.read())
    assert "result" in reply, reply
    return reply["result"]


def blockhash(localnet: Localnet) -> tuple[Hash, int]:
    """``(blockhash, lastValidBlockHeight)`` at processed, as an executor would sign with."""
    value = rpc(localnet, "getLatestBlockhash", [{"commitment": "processed"}])["value"]
    return Hash.from_string(value["blockhash"]), value["lastValidBlockHeight"]


def send(localnet: Localnet, txs: list[VersionedTransaction]) -> None:
    """sendTransaction with skipPreflight, in one batch request."""
    options = {"encoding": "base64", "skipPreflight": True}
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "sendTransaction",
         "params": [base64.b64encode(bytes(tx)).decode(), options]}
        for i, tx in enumerate(txs)
    ]
    request = urllib.request.Request(
        str(localnet.urls["rpc"]), data=json.dumps(batch).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        replies = json.loads(resp.read())
    assert all("result" in r for r in replies), [r for r in replies if "result" not in r][:3]


def status(localnet: Localnet, signature: str) -> dict[str, Any] | None:
    return rpc(localnet, "getSignatureStatuses", [[signature], {"searchTransactionHistory": True}])["value"][0]


def sig(tx: VersionedTransaction) -> str:
    return str(tx.signatures[0])


def start_confirmation(
    localnet: Localnet | None = None,
    settings: ConfirmationSettings = FAST,
    *,
    ws_url: str | None = None,
    rpc_url: str | None = None,
    **kwargs: Any,
) -> Ref:
    """A started Confirmation actor whose slot subscription is up."""
    ws = ws_url or (str(localnet.urls["ws"]) if localnet else None)
    rpc_ = rpc_url or (str(localnet.urls["rpc"]) if localnet else None)
    ref = Confirmation.start(running_board(), settings, ws_url=ws, rpc_url=rpc_, **kwargs)
    return ref


def health_of(ref: Ref) -> ConfirmationHealth:
    return ref.ask(GetConfirmationHealth(), timeout=5)


def watch_state(ref: Ref, signature: str) -> WatchState:
    """How the actor sees ``signature`` (waiters, landing)."""
    (state,) = ref.ask(GetWatches(signatures=(signature,)), timeout=5).watches
    return state


def subscriptions(ref: Ref) -> int:
    """signatureSubscribe subscriptions the actor has open on the node."""
    return ref.ask(GetWatches(), timeout=5).subscriptions


def wait_connected(ref: Ref, timeout: float = 10.0) -> None:
    wait_until(lambda: health_of(ref).connected, timeout, what="the confirmation's slot subscription")


def watch(
    ref: Ref,
    client: Client,
    tx: VersionedTransaction | str,
    *,
    value: float = 50.0,
    last_valid: int = 10_000,
    trade_id: str | None = None,
) -> str:
    signature = tx if isinstance(tx, str) else sig(tx)
    ref.tell(
        WatchSignature(
            trade_id=trade_id or f"trade-{signature[:8]}",
            signature=signature,
            value_usd=value,
            last_valid_block_height=last_valid,
            reply_to=client.ref,
        )
    )
    return signature


def subscribed(ref: Ref, count: int) -> Callable[[], bool]:
    """Predicate: ``count`` signature subscriptions are active on the node."""
    return lambda: subscriptions(ref) >= count


def tiers(*specs: tuple[float, int, float, bool]) -> tuple[Tier, ...]:
    return tuple(Tier(min_value_usd=v, confirmations=c, timeout_s=t, finalized=f) for v, c, t, f in specs)


def with_settings(**changes: Any) -> ConfirmationSettings:
    return dataclasses.replace(FAST, **changes)
