"""The chain's clock: ``getSlot`` (at a commitment), then ``getBlockTime`` of that slot.

One read, shared by the :class:`~xorj_actors.risk.ClockSkewMonitor` (every check) and by the
kill switch's downtime policy (:func:`read_chain_time`: a downtime is confirmed against the chain
before anything is flattened, docs/RISK.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from xorj_actors.quotas import Endpoint, Quotas, Turn, turn

__all__ = ["ChainTime", "RpcFailure", "RpcThrottled", "block_time_of", "checked_block_time", "read_chain_time"]

_MAX_REPLY_BYTES = 64 * 1024
_IDS = itertools.count(1)


class RpcFailure(Exception):
    """The node did not give the chain's time (no answer, an error, a malformed reply)."""


class RpcThrottled(RpcFailure):
    """The node answered 429."""


@dataclass(frozen=True, slots=True)
class ChainTime:
    slot: int
    #: The slot's block time (Unix seconds, as the chain records it).
    block_time: int


async def _call(session: aiohttp.ClientSession, url: str, method: str, params: list[Any], t: Turn) -> Any:
    body = {"jsonrpc": "2.0", "id": next(_IDS), "method": method, "params": params}
    try:
        async with session.post(url, json=body) as response:
            t.answered(response.status, response.headers.get("Retry-After"))
            if response.status == 429:
                raise RpcThrottled(f"{method}: HTTP 429")
            if response.status != 200:
                raise RpcFailure(f"{method}: HTTP {response.status}")
            chunks, size = [], 0
            async for chunk in response.content.iter_chunked(16 * 1024):
                size += len(chunk)
                if size > _MAX_REPLY_BYTES:  # a node that floods us is a failure, not a clock
                    raise RpcFailure(f"{method}: reply larger than {_MAX_REPLY_BYTES} bytes")
                chunks.append(chunk)
            raw = b"".join(chunks)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise RpcFailure(f"{method}: {type(exc).__name__}: {exc}") from None
    try:
        reply = json.loads(raw)
    except ValueError:
        raise RpcFailure(f"{method}: reply is not JSON") from None
    if not isinstance(reply, dict):
        raise RpcFailure(f"{method}: reply is not a JSON object")
    error = reply.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        text = error.get("message") if isinstance(error, dict) else error
        raise RpcFailure(f"{method}: JSON-RPC error {code}: {str(text)[:200]}")
    if "result" not in reply:
        raise RpcFailure(f"{method}: reply has neither result nor error")
    return reply["result"]


async def block_time_of(
    session: aiohttp.ClientSession, url: str, *, commitment: str, quotas: Quotas | None, owner: str, timeout_s: float
) -> tuple[int, Any]:
    """``(slot, getBlockTime's raw answer)``; both calls take their ``rpc_read`` turns first, so
    a wait in the budget never ages the slot whose time is read.

    Raises:
        RpcFailure: (RpcThrottled on a 429); QuotaError: no turn in the budget.
    """
    async with contextlib.AsyncExitStack() as stack:
        deadline = asyncio.get_running_loop().time() + timeout_s
        first, second = [
            await stack.enter_async_context(turn(quotas, Endpoint.RPC_READ, owner=owner, deadline=deadline))
            for _ in range(2)
        ]
        slot = await _call(session, url, "getSlot", [{"commitment": commitment}], first)
        if type(slot) is not int or slot < 0:
            raise RpcFailure(f"getSlot: not a slot: {slot!r}")
        return slot, await _call(session, url, "getBlockTime", [slot], second)


def checked_block_time(slot: int, block_time: Any) -> int:
    """``getBlockTime``'s answer as Unix seconds, or RpcFailure."""
    if block_time is None:
        raise RpcFailure(f"getBlockTime: no block time for slot {slot}")
    if type(block_time) is not int or block_time < 0:
        raise RpcFailure(f"getBlockTime: not a Unix time: {block_time!r}")
    return block_time


def read_chain_time(url: str | None, *, commitment: str, timeout_s: float, quotas: Quotas | None = None,
                    owner: str = "kill_switch") -> ChainTime:
    """The chain's time now (blocking: its own loop and session; for a thread, never an actor's).

    Raises:
        RpcFailure: no endpoint, no answer, or no usable block time; QuotaError: no turn.
    """
    if not url:
        raise RpcFailure("no RPC endpoint known")

    async def read() -> ChainTime:
        limit = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(timeout=limit, connector=aiohttp.TCPConnector(limit=2)) as session:
            slot, raw = await block_time_of(session, url, commitment=commitment, quotas=quotas, owner=owner, timeout_s=timeout_s)
        return ChainTime(slot, checked_block_time(slot, raw))

    return asyncio.run(read())
