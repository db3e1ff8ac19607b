"""The effect check's I/O: simulate the exact message and read the pre-state of the same slot.

``simulateTransaction`` with ``sigVerify: false``, ``replaceRecentBlockhash: false`` and the
``accounts`` config gives the post-state; ``getMultipleAccounts`` with ``minContextSlot`` gives
the pre-state. Both are asked at one commitment, and the answer is kept only when both report
the same context slot (each retry asks the other for at least the newer slot). Requests and
replies are solders' JSON-RPC types, sent over aiohttp, as the executor's other calls are.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from solders.account_decoder import UiAccountEncoding
from solders.commitment_config import CommitmentLevel
from solders.pubkey import Pubkey
from solders.rpc.config import (
    RpcAccountInfoConfig,
    RpcContextConfig,
    RpcSimulateTransactionAccountsConfig,
    RpcSimulateTransactionConfig,
)
from solders.rpc.errors import MinContextSlotNotReachedMessage
from solders.rpc.requests import (
    GetEpochInfo,
    GetLatestBlockhash,
    GetMultipleAccounts,
    SimulateVersionedTransaction,
)
from solders.rpc.responses import (
    GetEpochInfoResp,
    GetLatestBlockhashResp,
    GetMultipleAccountsResp,
    SimulateTransactionResp,
    batch_from_json,
)
from solders.transaction import VersionedTransaction

from xorj_actors.execution._effects import AccountState, decode_account
from xorj_actors.execution._errors import ErrorClass, TradeError, classify_chain_error, classify_exception, error_json
from xorj_actors.execution._refusal import RouteRefusalReason, RouteRefusal
from xorj_actors.quotas import Endpoint, Quotas, turn

__all__ = ["EffectReader", "SimulatedEffects"]

#: Agave's limit on one getMultipleAccounts.
_MAX_ACCOUNTS = 100
#: The longest a rate-limited read waits before asking again (longer: the trade's own retry).
_MAX_WAIT_S = 2.0
_COMMITMENTS = {"processed": CommitmentLevel.Processed, "confirmed": CommitmentLevel.Confirmed, "finalized": CommitmentLevel.Finalized}


@dataclass(frozen=True, slots=True)
class SimulatedEffects:
    """Pre- and post-state of the asked accounts at one slot, and what the simulation consumed."""

    slot: int
    pre: Mapping[Pubkey, AccountState | None]
    post: Mapping[Pubkey, AccountState | None]
    units: int
    logs: tuple[str, ...]
    #: Asked with ``height``: ``lastValidBlockHeight`` of the newest confirmed blockhash at
    #: ``slot`` or later, when the batch's answer was at such a slot (None: ask for it apart).
    last_valid_block_height: int | None = None


class EffectReader:
    """Reads a route's effects from a JSON-RPC node; signs nothing, sends nothing."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        commitment: str = "confirmed",
        timeout_s: float = 10.0,
        max_attempts: int = 4,
        quotas: Quotas | None = None,
    ) -> None:
        if commitment not in _COMMITMENTS:
            raise ValueError(f"commitment: one of {', '.join(_COMMITMENTS)}")
        self.url = url
        self.session = session
        self.commitment = _COMMITMENTS[commitment]
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.quotas = quotas
        self._ids = itertools.count(1)

    async def read(
        self, tx: VersionedTransaction, addresses: Sequence[Pubkey], *, height: bool = False
    ) -> SimulatedEffects | RouteRefusal:
        """Simulate ``tx`` as it is and read ``addresses`` before and after, at one slot;
        ``height``: the newest confirmed blockhash's last valid height in the same batch too.

        A failed simulation raises its classified :class:`TradeError` (as the executor's
        simulation does); pre- and post-state that never meet at one slot are a refusal.
        """
        addresses = list(dict.fromkeys(addresses))
        if len(addresses) <= _MAX_ACCOUNTS:
            # One batch: the node answers both at (almost always) one slot, in one round trip.
            pre_slot = sim_slot = -1
            for _ in range(self.max_attempts):
                pre_slot, pre, sim_slot, post, units, logs, latest = await self._together(tx, addresses, height)
                if sim_slot == pre_slot:
                    # The blockhash answer bounds the message's only if it is at least as new.
                    last_valid = latest[1] if latest is not None and latest[0] >= sim_slot else None
                    return SimulatedEffects(sim_slot, pre, post, units, logs, last_valid)
            return RouteRefusal(
                RouteRefusalReason.STATE_UNREADABLE,
                f"pre-state (slot {pre_slot}) and simulation (slot {sim_slot}) never met at one slot",
            )
        pre_slot, pre = await self._pre(addresses, None)
        sim_slot = -1
        for _ in range(self.max_attempts):
            sim_slot, post, units, logs = await self._simulate(tx, addresses, pre_slot)
            if sim_slot == pre_slot:
                return SimulatedEffects(sim_slot, pre, post, units, logs)
            pre_slot, pre = await self._pre(addresses, sim_slot)
        return RouteRefusal(
            RouteRefusalReason.STATE_UNREADABLE,
            f"pre-state (slot {pre_slot}) and simulation (slot {sim_slot}) never met at one slot",
        )

    async def last_valid_block_height(self, min_slot: int) -> int:
        """``lastValidBlockHeight`` of the newest ``confirmed`` blockhash at a slot at least
        ``min_slot``.

        A blockhash the node accepted at ``min_slot`` (a simulation there took it) is no newer, so
        a transaction built on it can never land past this height. Always at ``confirmed``: at
        ``processed`` a minority fork could answer.
        """
        config = RpcContextConfig(CommitmentLevel.Confirmed, min_slot)
        resp = await self._post(GetLatestBlockhash(config, id=next(self._ids)).to_json(), GetLatestBlockhashResp)
        return int(resp.value.last_valid_block_height)

    async def height_and_states(
        self, addresses: Sequence[Pubkey]
    ) -> tuple[int, dict[Pubkey, AccountState | None]]:
        """The block height at ``confirmed`` and ``addresses`` read at that slot or later.

        One ``getEpochInfo`` gives the height and its slot together; the accounts are read with
        that slot as ``minContextSlot``, so a node behind the one that answered the height
        cannot answer (behind a load balancer the two calls may reach different nodes).
        """
        resp = await self._post(
            GetEpochInfo(RpcContextConfig(CommitmentLevel.Confirmed), id=next(self._ids)).to_json(), GetEpochInfoResp
        )
        info = resp.value
        _, states = await self._pre(list(dict.fromkeys(addresses)), info.absolute_slot, CommitmentLevel.Confirmed)
        return int(info.block_height), states

    async def _pre(
        self, addresses: list[Pubkey], min_slot: int | None, commitment: CommitmentLevel | None = None
    ) -> tuple[int, dict[Pubkey, AccountState | None]]:
        commitment = commitment or self.commitment
        config = RpcAccountInfoConfig(UiAccountEncoding.Base64, None, commitment, min_slot)
        slots: set[int] = set()
        states: dict[Pubkey, AccountState | None] = {}
        for start in range(0, len(addresses), _MAX_ACCOUNTS):
            chunk = addresses[start : start + _MAX_ACCOUNTS]
            body = GetMultipleAccounts(chunk, config, id=next(self._ids)).to_json()
            resp = await self._post(body, GetMultipleAccountsResp)
            if len(resp.value) != len(chunk):
                raise TradeError(ErrorClass.UNKNOWN, f"getMultipleAccounts answered {len(resp.value)} of {len(chunk)}")
            slots.add(resp.context.slot)
            states.update(zip(chunk, (decode_account(a) for a in resp.value)))
            if min_slot is None:
                # Every further chunk from the slot of the first: one pre-state.
                min_slot = resp.context.slot
                config = RpcAccountInfoConfig(UiAccountEncoding.Base64, None, commitment, min_slot)
        if len(slots) > 1:
            return -1, states  # chunks from different slots: the caller asks again
        return (slots.pop() if slots else -1), states

    async def _together(self, tx: VersionedTransaction, addresses: list[Pubkey], height: bool) -> tuple[
        int, dict[Pubkey, AccountState | None], int, dict[Pubkey, AccountState | None], int, tuple[str, ...],
        tuple[int, int] | None,
    ]:
        """``getMultipleAccounts`` and ``simulateTransaction`` (``height``: and
        ``getLatestBlockhash``, its ``(context slot, lastValidBlockHeight)``) in one JSON-RPC batch."""
        read = GetMultipleAccounts(
            addresses, RpcAccountInfoConfig(UiAccountEncoding.Base64, None, self.commitment), id=next(self._ids)
        )
        simulate = SimulateVersionedTransaction(tx, self._sim_config(addresses, None), id=next(self._ids))
        requests: list[Any] = [read, simulate]
        answers: tuple[Any, ...] = (GetMultipleAccountsResp, SimulateTransactionResp)
        if height:
            requests.append(GetLatestBlockhash(RpcContextConfig(CommitmentLevel.Confirmed), id=next(self._ids)))
            answers += (GetLatestBlockhashResp,)
        pre_resp, sim_resp, *rest = await self._post(batch_json(requests), answers)
        if len(pre_resp.value) != len(addresses):
            raise TradeError(ErrorClass.UNKNOWN, f"getMultipleAccounts answered {len(pre_resp.value)} of {len(addresses)}")
        pre = dict(zip(addresses, (decode_account(a) for a in pre_resp.value)))
        sim_slot, post, units, logs = self._simulated(sim_resp, addresses)
        latest = (rest[0].context.slot, int(rest[0].value.last_valid_block_height)) if rest else None
        return pre_resp.context.slot, pre, sim_slot, post, units, logs, latest

    def _sim_config(self, addresses: list[Pubkey], min_slot: int | None) -> RpcSimulateTransactionConfig:
        return RpcSimulateTransactionConfig(
            sig_verify=False,
            replace_recent_blockhash=False,
            commitment=self.commitment,
            accounts=RpcSimulateTransactionAccountsConfig(addresses, UiAccountEncoding.Base64),
            min_context_slot=min_slot,
        )

    async def _simulate(
        self, tx: VersionedTransaction, addresses: list[Pubkey], min_slot: int
    ) -> tuple[int, dict[Pubkey, AccountState | None], int, tuple[str, ...]]:
        config = self._sim_config(addresses, max(min_slot, 0))
        resp = await self._post(SimulateVersionedTransaction(tx, config, id=next(self._ids)).to_json(), SimulateTransactionResp)
        return self._simulated(resp, addresses)

    @staticmethod
    def _simulated(
        resp: SimulateTransactionResp, addresses: list[Pubkey]
    ) -> tuple[int, dict[Pubkey, AccountState | None], int, tuple[str, ...]]:
        value = resp.value
        logs = tuple(value.logs or ())
        if value.err is not None:
            err = error_json(value.err)
            raise TradeError(classify_chain_error(err), f"simulation failed: {err}; logs: {' | '.join(logs[-3:])}")
        accounts = value.accounts
        if accounts is None or len(accounts) != len(addresses):
            raise TradeError(ErrorClass.UNKNOWN, "simulateTransaction answered without the asked accounts")
        post = {k: decode_account(a) for k, a in zip(addresses, accounts)}
        return resp.context.slot, post, value.units_consumed or 0, logs

    async def _post(self, body: str, parse: Any) -> Any:
        # A batch is as many requests to the provider as it has entries: a turn for each.
        endpoints = [_ENDPOINT_OF.get(p, Endpoint.RPC_READ) for p in (parse if isinstance(parse, tuple) else (parse,))]
        for n in range(1, self.max_attempts + 1):
            try:
                text = await self._post_once(body, endpoints)
            except Exception as exc:  # noqa: BLE001 - classified for the caller
                error = classify_exception(exc)
                if error.error_class is ErrorClass.RATE_LIMITED and n < self.max_attempts:
                    # A read, asked again: a new attempt of the trade would need a new quote.
                    wait = error.retry_after_s if error.retry_after_s is not None else 0.1 * n
                    await asyncio.sleep(min(_MAX_WAIT_S, wait))
                    continue
                raise error from exc
            if isinstance(parse, tuple):  # a batch: one answer per request, in order
                answers = batch_from_json(text, list(parse))
                if any(isinstance(a, MinContextSlotNotReachedMessage) for a in answers):
                    await asyncio.sleep(0.05)
                    continue
                for answer, kind in zip(answers, parse, strict=True):
                    if not isinstance(answer, kind):
                        raise _rpc_error(answer)
                return answers
            resp = parse.from_json(text)
            if isinstance(resp, MinContextSlotNotReachedMessage):
                await asyncio.sleep(0.05)  # the node is a slot behind the other answer: ask again
                continue
            if not isinstance(resp, parse):
                raise _rpc_error(resp)
            return resp
        raise TradeError(ErrorClass.TIMEOUT, "the node never reached the slot of the other answer")


    async def _post_once(self, body: str, endpoints: list[Endpoint]) -> str:
        async with contextlib.AsyncExitStack() as stack:
            turns = [await stack.enter_async_context(turn(self.quotas, e)) for e in endpoints]
            async with self.session.post(
                self.url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as http:
                if http.status == 429:
                    for t in turns:
                        t.answered(429, http.headers.get("Retry-After"))
                http.raise_for_status()
                return await http.text()
        raise AssertionError("unreachable: the block returns or raises")


#: The budget class of each answer type read through :meth:`EffectReader._post`.
_ENDPOINT_OF: dict[Any, Endpoint] = {SimulateTransactionResp: Endpoint.RPC_SIMULATE}


def batch_json(requests: Sequence[Any]) -> str:
    """A JSON-RPC batch of solders requests: the array of their own JSON (what solders'
    ``batch_to_json`` writes, at a small part of its cost)."""
    return "[" + ",".join(r.to_json() for r in requests) + "]"


def _rpc_error(answer: Any) -> TradeError:
    return TradeError(ErrorClass.UNKNOWN, f"JSON-RPC error: {answer}")
