"""The executor's view of the network: JSON-RPC through solana-py, Jupiter through its client.

Every call either returns an answer that was checked to make sense, or raises a classified
:class:`TradeError`. Both run on the executor's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from xorj_actors.execution._errors import ErrorClass, TradeError, classify_chain_error, classify_exception, error_json
from xorj_actors.execution.settings import ExecutionSettings
from xorj_actors.jupiter import JupiterRefused, MalformedAnswer, RefusalReason, UsdPrice
from xorj_actors.chain import solana_call
from xorj_actors.quotas import Endpoint, Quotas

__all__ = ["ChainClient", "Simulation", "jupiter_call", "refused", "usd_prices"]

T = TypeVar("T")


def _nonsense(what: str) -> TradeError:
    return TradeError(ErrorClass.UNKNOWN, f"RPC answer makes no sense: {what}")


class Simulation:
    __slots__ = ("logs", "units")

    def __init__(self, units: int, logs: Sequence[str]) -> None:
        self.units, self.logs = units, tuple(logs)


class ChainClient:
    """solana-py's AsyncClient, with a short-lived blockhash cache; every call takes its turn
    in its JSON-RPC class's budget (``quotas`` None: unbudgeted)."""

    def __init__(self, url: str, settings: ExecutionSettings, quotas: Quotas | None = None) -> None:
        self.settings = settings
        self.quotas = quotas
        self.rpc = AsyncClient(url, commitment=Confirmed, timeout=settings.request_timeout_s)
        self._blockhash: tuple[float, Hash, int] | None = None
        self._blockhash_lock = asyncio.Lock()

    async def close(self) -> None:
        await self.rpc.close()

    async def _call(self, endpoint: Endpoint, call: Callable[[], Awaitable[Any]], kind: str | None = None) -> Any:
        timeout = self.settings.request_timeout_s
        try:
            return await solana_call(self.quotas, endpoint, lambda: asyncio.wait_for(call(), timeout), kind=kind)
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
            resp = await self._call(Endpoint.RPC_READ, lambda: self.rpc.get_latest_blockhash(Confirmed))
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
        resp = await self._call(
            Endpoint.RPC_SIMULATE, lambda: self.rpc.simulate_transaction(tx, sig_verify=False, commitment=Confirmed)
        )
        value = resp.value
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
        opts = TxOpts(skip_preflight=not preflight, preflight_commitment=Confirmed, max_retries=0)
        resp = await self._call(Endpoint.RPC_SEND, lambda: self.rpc.send_raw_transaction(bytes(tx), opts), "signed")
        if resp.value != tx.signatures[0]:
            raise _nonsense(f"sendTransaction answered {resp.value}, the transaction is {tx.signatures[0]}")


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
