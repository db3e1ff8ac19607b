"""The executor's view of the network: JSON-RPC as solders' request and answer types over one
aiohttp session, Jupiter through its client.

Every call either returns an answer that was checked to make sense, or raises a classified
:class:`TradeError`. Both run on the executor's event loop. The one session also carries the
effect reads, the lookup-table reads and the fee reads to the same node (:attr:`ChainClient.session`).
"""

from __future__ import annotations

import itertools
import time
import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
from solders.account_decoder import UiAccountEncoding
from solders.commitment_config import CommitmentLevel
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.rpc.config import RpcAccountInfoConfig, RpcContextConfig, RpcSendTransactionConfig, RpcSimulateTransactionConfig
from solders.rpc.requests import GetLatestBlockhash, GetMultipleAccounts, SendVersionedTransaction, SimulateVersionedTransaction
from solders.rpc.responses import GetLatestBlockhashResp, GetMultipleAccountsResp, SendTransactionResp, SimulateTransactionResp
from solders.transaction import VersionedTransaction

from xorj_actors.chain import AccountFetcher, RawAccount
from xorj_actors.execution._errors import (
    ErrorClass,
    TradeError,
    classify_chain_error,
    classify_exception,
    error_json,
    rpc_error,
)
from xorj_actors.execution.settings import ExecutionSettings
from xorj_actors.jupiter import JupiterRefused, MalformedAnswer, RefusalReason, UsdPrice
from xorj_actors.quotas import Endpoint, Quotas, turn

__all__ = ["ChainClient", "Simulation", "jupiter_call", "refused", "usd_prices"]

T = TypeVar("T")
A = TypeVar("A")

_JSON = {"Content-Type": "application/json"}
_COMMITMENTS = {"processed": CommitmentLevel.Processed, "confirmed": CommitmentLevel.Confirmed, "finalized": CommitmentLevel.Finalized}
#: The configs every call of a kind sends (solders' types are immutable: built once).
_LATEST = RpcContextConfig(CommitmentLevel.Confirmed)
_SIMULATE = RpcSimulateTransactionConfig(sig_verify=False, commitment=CommitmentLevel.Confirmed)
_SEND = {
    preflight: RpcSendTransactionConfig(skip_preflight=not preflight, preflight_commitment=CommitmentLevel.Confirmed, max_retries=0)
    for preflight in (True, False)
}


def _nonsense(what: str) -> TradeError:
    return TradeError(ErrorClass.UNKNOWN, f"RPC answer makes no sense: {what}")


class Simulation:
    __slots__ = ("logs", "units")

    def __init__(self, units: int, logs: Sequence[str]) -> None:
        self.units, self.logs = units, tuple(logs)


class ChainClient:
    """JSON-RPC to the node at ``url``, with a short-lived blockhash cache; every call takes its
    turn in its JSON-RPC class's budget (``quotas`` None: unbudgeted). :meth:`open` on the loop first."""

    def __init__(self, url: str, settings: ExecutionSettings, quotas: Quotas | None = None) -> None:
        self.url = url
        self.settings = settings
        self.quotas = quotas
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._blockhash: tuple[float, Hash, int] | None = None
        self._blockhash_lock = asyncio.Lock()

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout_s))

    @property
    def session(self) -> aiohttp.ClientSession:
        """The one HTTP session to the node (keep-alive connections shared by every reader)."""
        assert self._session is not None, "ChainClient.open() first"
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, endpoint: Endpoint, request: Any, kind: str | None = None) -> str:
        """POST one request in its turn; the answer's text. Failures raise as they are."""
        async with turn(self.quotas, endpoint, kind=kind) as t:
            async with self.session.post(self.url, data=request.to_json(), headers=_JSON) as http:
                if http.status == 429:
                    t.answered(429, http.headers.get("Retry-After"))
                http.raise_for_status()
                return await http.text()

    async def _call(self, endpoint: Endpoint, request: Any, answer: type[A], kind: str | None = None) -> A:
        """One request's answer parsed as ``answer``, or a classified TradeError (a JSON-RPC
        error, the HTTP status, a transport failure or no turn in the budget)."""
        try:
            return _parsed(await self._post(endpoint, request, kind), answer)
        except Exception as exc:  # noqa: BLE001 - classified for the caller (a quota error too)
            raise classify_exception(exc) from exc

    async def blockhash(self) -> tuple[Hash, int]:
        """A confirmed blockhash and its ``lastValidBlockHeight``, reused for ``blockhash_max_age_s``."""
        cached = self._blockhash
        if cached is not None and time.monotonic() - cached[0] < self.settings.blockhash_max_age_s:
            return cached[1], cached[2]
        async with self._blockhash_lock:  # one fetch for the many trades that find it stale at once
            cached = self._blockhash
            if cached is not None and time.monotonic() - cached[0] < self.settings.blockhash_max_age_s:
                return cached[1], cached[2]
            resp = await self._call(Endpoint.RPC_READ, GetLatestBlockhash(_LATEST, id=next(self._ids)), GetLatestBlockhashResp)
            value = resp.value
            if value.last_valid_block_height <= 0 or value.blockhash == Hash.default():
                raise _nonsense(f"getLatestBlockhash {value}")
            self._blockhash = (time.monotonic(), value.blockhash, value.last_valid_block_height)
            return value.blockhash, value.last_valid_block_height

    def forget_blockhash(self) -> None:
        """The node refused our blockhash: the next trade fetches a new one."""
        self._blockhash = None

    async def simulate(self, tx: VersionedTransaction) -> Simulation:
        """Simulate without signature checks; an error is raised classified, with the logs."""
        request = SimulateVersionedTransaction(tx, _SIMULATE, id=next(self._ids))
        value = (await self._call(Endpoint.RPC_SIMULATE, request, SimulateTransactionResp)).value
        logs = value.logs or []
        if value.err is not None:
            err = error_json(value.err)
            raise TradeError(classify_chain_error(err), f"simulation failed: {err}; logs: {' | '.join(logs[-3:])}")
        units = value.units_consumed
        if units is None or units <= 0:
            raise _nonsense(f"simulation consumed {units} compute units")
        return Simulation(units, logs)

    async def send(self, tx: VersionedTransaction, *, preflight: bool) -> None:
        """Send the signed bytes; the node must answer with the transaction's own signature."""
        request = SendVersionedTransaction(tx, _SEND[preflight], id=next(self._ids))
        resp = await self._call(Endpoint.RPC_SEND, request, SendTransactionResp, "signed")
        if resp.value != tx.signatures[0]:
            raise _nonsense(f"sendTransaction answered {resp.value}, the transaction is {tx.signatures[0]}")

    def account_fetcher(self, commitment: str = "confirmed") -> AccountFetcher:
        """``getMultipleAccounts`` (base64) at ``commitment`` in the ``rpc_read`` budget: the
        lookup tables' reader. Failures raise unclassified (the table cache classifies them)."""
        config = RpcAccountInfoConfig(UiAccountEncoding.Base64, None, _COMMITMENTS[commitment])

        async def fetch(keys: Sequence[Pubkey]) -> tuple[int, Sequence[RawAccount | None]]:
            text = await self._post(Endpoint.RPC_READ, GetMultipleAccounts(list(keys), config, id=next(self._ids)))
            resp = _parsed(text, GetMultipleAccountsResp)
            return resp.context.slot, [None if a is None else RawAccount(a.owner, bytes(a.data)) for a in resp.value]

        return fetch


def _parsed(text: str, answer: type[A]) -> A:
    """``text`` as ``answer``; a JSON-RPC error raised as its classified TradeError."""
    resp = answer.from_json(text)  # type: ignore[attr-defined]
    if not isinstance(resp, answer):
        raise rpc_error(resp)
    return resp


#: What an API's refusal means for the trade.
_REFUSALS: Mapping[RefusalReason, ErrorClass] = {
    RefusalReason.NO_ROUTE: ErrorClass.NO_ROUTE,
    RefusalReason.NOT_TRADABLE: ErrorClass.NO_ROUTE,
    RefusalReason.BELOW_GASLESS_MINIMUM: ErrorClass.NO_ROUTE,
    RefusalReason.BAD_REQUEST: ErrorClass.UNKNOWN,
    RefusalReason.UNAUTHORIZED: ErrorClass.UNKNOWN,
    RefusalReason.RATE_LIMITED: ErrorClass.RATE_LIMITED,
    RefusalReason.INSUFFICIENT_FUNDS: ErrorClass.INSUFFICIENT_FUNDS,
    RefusalReason.INSUFFICIENT_SOL_FOR_GAS: ErrorClass.INSUFFICIENT_FUNDS,
    RefusalReason.SIMULATION_FAILED: ErrorClass.PROGRAM,
    RefusalReason.SERVER_ERROR: ErrorClass.NETWORK,
}


def refused(exc: JupiterRefused) -> TradeError:
    """An API's refusal as the trade's classified error."""
    refusal = exc.refusal
    cls = _REFUSALS.get(refusal.reason, ErrorClass.UNKNOWN)
    return TradeError(cls, f"jupiter: {refusal}", retry_after_s=refusal.retry_after_s)


async def jupiter_call(coro: Awaitable[T]) -> T:
    """Await a :class:`JupiterClient` call; any failure is raised as a classified TradeError."""
    try:
        return await coro
    except JupiterRefused as exc:
        raise refused(exc) from exc
    except MalformedAnswer as exc:
        raise TradeError(ErrorClass.UNKNOWN, f"jupiter answer makes no sense: {exc}") from exc
    except TradeError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified for the caller
        raise classify_exception(exc) from exc


def usd_prices(prices: Mapping[Pubkey, UsdPrice]) -> dict[str, float]:
    """Price v3's answer as the reference-price check reads it (USD by mint)."""
    return {str(mint): price.usd_price for mint, price in prices.items()}
