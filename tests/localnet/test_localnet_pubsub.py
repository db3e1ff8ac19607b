"""The localnet's PubSub: solana-py's SolanaWsClient and a raw `websockets` client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Processed
from solana.rpc.models import TxOpts
from solana.rpc.websocket_api import SolanaWsClient
from solders.rpc.responses import AccountNotification, SignatureNotification, SlotNotification
from solders.token.state import TokenAccount
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from xorj_actors.localnet import Localnet

SKIP = TxOpts(skip_preflight=True)
WAIT = 5.0  # generous upper bound on waiting for a frame; no test asserts timing


class Raw:
    """A raw JSON-RPC-over-WebSocket client."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = iter(range(1, 10_000))

    async def request(self, method: str, params: list[Any] | None = None) -> dict[str, Any]:
        request_id = next(self.ids)
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or []}))
        reply = await self.recv()
        assert reply.get("id") == request_id, reply
        return reply

    async def recv(self) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))


async def latest(localnet: Localnet):
    async with AsyncClient(localnet.urls["rpc"]) as c:
        return (await c.get_latest_blockhash(Processed)).value.blockhash


async def send(localnet: Localnet, tx) -> None:
    async with AsyncClient(localnet.urls["rpc"]) as c:
        await c.send_raw_transaction(bytes(tx), SKIP)


async def test_swap_to_finalized_notification_with_solana_py(localnet: Localnet, make_swap) -> None:
    tx = make_swap(await latest(localnet))
    async with SolanaWsClient(localnet.urls["ws"]) as ws:
        await ws.signature_subscribe(signature=tx.signatures[0], commitment="finalized")
        await send(localnet, tx)
        localnet.advance(3)  # confirmed, not yet finalized (lag 4)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        localnet.advance()
        note = await asyncio.wait_for(ws.recv(), WAIT)
    assert isinstance(note, SignatureNotification)
    assert note.result.value.err is None
    assert note.result.context.slot == 0  # the slot the swap landed in


#: A client without compression (the engine's) gets the hub's lean writes; with it, aiohttp's writer.
COMPRESSION = pytest.mark.parametrize("compression", ["deflate", None])


@COMPRESSION
async def test_received_and_failed_notifications_in_agave_shape(localnet: Localnet, make_swap, compression: str | None) -> None:
    g = localnet.genesis
    tx = make_swap(await latest(localnet), amount_out=g.token("JUP").market_maker_amount + 1)
    async with websockets.connect(localnet.urls["ws"], compression=compression) as ws:
        client = Raw(ws)
        sub = (
            await client.request(
                "signatureSubscribe",
                [str(tx.signatures[0]), {"commitment": "confirmed", "enableReceivedNotification": True}],
            )
        )["result"]
        await send(localnet, tx)
        received = await client.recv()
        assert received["method"] == "signatureNotification"
        expected = {"result": {"context": {"slot": 0}, "value": "receivedSignature"}, "subscription": sub}
        assert received["params"] == expected
        localnet.advance()
        final = await client.recv()
        assert final["params"]["result"]["value"] == {"err": {"InstructionError": [1, {"Custom": 1}]}}
        # One-shot: the subscription is gone after its final notification.
        gone = await client.request("signatureUnsubscribe", [sub])
        assert gone["error"]["code"] == -32602


@COMPRESSION
async def test_subscribe_after_landing_notifies_at_once(localnet: Localnet, make_swap, compression: str | None) -> None:
    tx = make_swap(await latest(localnet))
    await send(localnet, tx)
    async with websockets.connect(localnet.urls["ws"], compression=compression) as ws:
        client = Raw(ws)
        await client.request("signatureSubscribe", [str(tx.signatures[0]), {"commitment": "processed"}])
        note = await client.recv()
        assert note["params"]["result"]["value"] == {"err": None}


async def test_slot_notifications_and_unsubscribe(localnet: Localnet) -> None:
    async with SolanaWsClient(localnet.urls["ws"]) as ws:
        sub = await ws.slot_subscribe()
        localnet.advance(5)
        notes = [await asyncio.wait_for(ws.recv(), WAIT) for _ in range(5)]
        assert all(isinstance(n, SlotNotification) for n in notes)
        assert [n.result.slot for n in notes] == [1, 2, 3, 4, 5]
        assert notes[-1].result.parent == 4 and notes[-1].result.root == 1
        await ws.unsubscribe(sub)
        localnet.advance()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)


async def test_account_subscribe_sees_the_swap(localnet: Localnet, make_swap) -> None:
    account = localnet.genesis.vault(0).token_accounts["JUP"]
    async with SolanaWsClient(localnet.urls["ws"]) as ws:
        await ws.account_subscribe(pubkey=account, commitment="confirmed", encoding="base64")
        await send(localnet, make_swap(await latest(localnet), amount_out=7))
        localnet.advance()
        note = await asyncio.wait_for(ws.recv(), WAIT)
    assert isinstance(note, AccountNotification)
    assert TokenAccount.from_bytes(bytes(note.result.value.data)).amount == 7


async def test_lean_writes_frame_every_size_in_order(localnet: Localnet, make_swap) -> None:
    """Uncompressed: slot notifications of one advance come in order, and an account notification
    (a 126..65535-byte frame) and a 64 KiB+ reply parse as whole frames."""
    account = localnet.genesis.vault(0).token_accounts["JUP"]
    async with websockets.connect(localnet.urls["ws"], compression=None, max_size=1 << 20) as ws:
        client = Raw(ws)
        await client.request("slotSubscribe")
        await client.request("accountSubscribe", [str(account), {"commitment": "processed", "encoding": "jsonParsed"}])
        start = localnet.slot()
        localnet.advance(3)
        assert [(await client.recv())["params"]["result"]["slot"] for _ in range(3)] == [start + 1, start + 2, start + 3]
        await send(localnet, make_swap(await latest(localnet), amount_out=7))
        note = await client.recv()
        while note["method"] != "accountNotification":
            note = await client.recv()
        assert note["params"]["result"]["value"]["data"]["parsed"]["info"]["tokenAmount"]["amount"] == "7"
        big = "x" * 70_000
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": big, "method": "nope", "params": []}))
        reply = await client.recv()
        while "id" not in reply:
            reply = await client.recv()
        assert reply["id"] == big and reply["error"]["code"] == -32601


async def test_pubsub_errors(localnet: Localnet) -> None:
    async with websockets.connect(localnet.urls["ws"]) as ws:
        client = Raw(ws)
        assert (await client.request("blockSubscribe", []))["error"]["code"] == -32601
        assert (await client.request("signatureSubscribe", ["nope"]))["error"]["code"] == -32602
        assert (await client.request("accountSubscribe", ["x"]))["error"]["code"] == -32602
        assert (await client.request("slotUnsubscribe", [999]))["error"]["code"] == -32602
        await ws.send("{oops")
        assert (await client.recv())["error"]["code"] == -32700
        # The connection survives bad requests.
        assert isinstance((await client.request("slotSubscribe"))["result"], int)


async def test_drop_websockets_then_reconnect_and_resubscribe(fast_localnet: Localnet, make_swap) -> None:
    ln = fast_localnet
    async with websockets.connect(ln.urls["ws"]) as ws:
        client = Raw(ws)
        await client.request("slotSubscribe")
        await client.recv()
        assert ln.drop_websockets() == 1
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), WAIT)
    # A fresh connection works; a transaction that landed meanwhile is caught by its subscription.
    tx = make_swap(await latest(ln))
    await send(ln, tx)
    async with SolanaWsClient(ln.urls["ws"]) as ws2:
        await ws2.signature_subscribe(signature=tx.signatures[0], commitment="finalized")
        note = await asyncio.wait_for(ws2.recv(), WAIT)
    assert isinstance(note, SignatureNotification) and note.result.value.err is None


@pytest.mark.parametrize("case", ["receivedSignature", "failed transaction"])
async def test_solana_py_cannot_parse_what_mainnet_sends(localnet: Localnet, make_swap, case: str) -> None:
    """Two Agave notifications kill solana-py 0.41's reader and every subscription on it:
    ``receivedSignature`` and a failed transaction's ``{"InstructionError":[1,{"Custom":1}]}``.

    The localnet sends what mainnet sends; this pins the client's failure for the engine's
    Confirmation actor, which must parse raw frames (or back the socket with status polling).
    """
    g = localnet.genesis
    failing = case == "failed transaction"
    amount_out = g.token("JUP").market_maker_amount + 1 if failing else 1
    tx = make_swap(await latest(localnet), amount_out=amount_out)
    async with SolanaWsClient(localnet.urls["ws"]) as ws:
        await ws.slot_subscribe()
        await ws.signature_subscribe(
            signature=tx.signatures[0], commitment="processed", enable_received_notification=not failing
        )
        await send(localnet, tx)
        with pytest.raises(Exception, match="a list or single element"):
            await asyncio.wait_for(ws.recv(), WAIT)
        assert str(ws.connection_state) == "ConnectionState.CLOSED"
