"""The RPC port's HTTP/1.1 handling, byte by byte: fast path and hand-off to aiohttp."""

from __future__ import annotations

import asyncio
import json

from xorj_actors.localnet import Localnet

HEALTH = b'{"jsonrpc":"2.0","id":1,"method":"getHealth"}'
WAIT = 5.0


def post(body: bytes = HEALTH, *, version: bytes = b"HTTP/1.1", extra: bytes = b"") -> bytes:
    return b"POST / " + version + b"\r\nHost: x\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body


async def connect(localnet: Localnet) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = localnet.urls["rpc"].removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await asyncio.wait_for(reader.read(), WAIT)
    return status, headers, body


async def test_split_and_pipelined_requests_are_answered_in_order(localnet: Localnet) -> None:
    reader, writer = await connect(localnet)
    request = post()
    for i in range(0, len(request), 7):  # dribbled in small pieces
        writer.write(request[i : i + 7])
        await writer.drain()
    assert json.loads((await response(reader))[2])["result"] == "ok"
    slot = b'{"jsonrpc":"2.0","id":2,"method":"getSlot","params":[{"commitment":"processed"}]}'
    writer.write(post(slot) + post())  # two requests in one write
    assert json.loads((await response(reader))[2])["id"] == 2
    assert json.loads((await response(reader))[2])["id"] == 1
    writer.close()


async def test_connection_close_is_honoured(localnet: Localnet) -> None:
    reader, writer = await connect(localnet)
    writer.write(post(extra=b"Connection: close\r\n"))
    status, headers, _ = await response(reader)
    assert status == 200 and headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    writer.close()


async def test_unusual_requests_go_to_aiohttp(localnet: Localnet) -> None:
    cases = [
        (post(version=b"HTTP/1.0"), 200),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % len(HEALTH) + HEALTH + b"\r\n0\r\n\r\n",
            200,
        ),
    ]
    for raw, expected in cases:
        reader, writer = await connect(localnet)
        writer.write(raw)
        status, _, body = await response(reader)
        assert status == expected, (raw[:40], status, body[:200])
        if expected == 200:
            assert json.loads(body)["result"] == "ok"
        writer.close()


async def test_fault_set_mid_connection_reaches_a_kept_alive_client(localnet: Localnet) -> None:
    reader, writer = await connect(localnet)
    writer.write(post())
    assert (await response(reader))[0] == 200
    localnet.set_faults(rate_limit=1.0, retry_after_s=7)
    writer.write(post())
    status, headers, _ = await response(reader)
    assert status == 429 and headers["retry-after"] == "7"
    localnet.reset_faults()
    writer.write(post())
    assert (await response(reader))[0] == 200
    writer.close()


async def test_quote_port_answers_jupiter_paths_inline_and_hands_the_rest_to_aiohttp(localnet: Localnet) -> None:
    # Jupiter's paths take the lean path; anything else (here a 404) hands the connection over.
    usdc, jup = (str(localnet.genesis.token(s).mint) for s in ("USDC", "JUP"))
    host, port = localnet.urls["quote"].removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    price = b"GET /price/v3?ids=%s&ids=ignored HTTP/1.1\r\nHost: x\r\n\r\n" % f"{usdc},{jup}".encode()
    writer.write(price)
    status, headers, body = await response(reader)
    assert status == 200 and headers["content-type"] == "application/json; charset=utf-8"
    assert set(json.loads(body)) == {usdc, jup}  # a repeated name: its first value, as aiohttp reads it
    bad = b'{"userPublicKey": 7'
    writer.write(b"POST /swap/v1/swap-instructions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(bad) + bad)
    status, _, body = await response(reader)
    assert status == 400 and json.loads(body) == {"error": "body: not valid JSON", "errorCode": "INVALID_REQUEST"}
    writer.write(b"GET /swap/v1/nope HTTP/1.1\r\nHost: x\r\n\r\n" + price)
    assert (await response(reader))[0] == 404
    assert (await response(reader))[0] == 200  # the same connection, now aiohttp's
    writer.close()


async def test_a_batch_on_the_lean_path_answers_every_entry_in_order(localnet: Localnet) -> None:
    # A JSON-RPC batch (an array) gets an array: one reply per entry, in order; an entry that is
    # not a request object is answered -32600 with a null id; an empty batch is one -32600.
    reader, writer = await connect(localnet)
    batch = b'[{"jsonrpc":"2.0","id":"a","method":"getHealth"},7,{"jsonrpc":"2.0","id":3,"method":"getSlot"}]'
    writer.write(post(batch))
    status, headers, body = await response(reader)
    replies = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert [r["id"] for r in replies] == ["a", None, 3]
    assert replies[0]["result"] == "ok" and replies[1]["error"]["code"] == -32600 and "result" in replies[2]
    writer.write(post(b"[]"))
    assert json.loads((await response(reader))[2])["error"]["code"] == -32600
    writer.close()
