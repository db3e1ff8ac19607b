"""The executor's view of the network: JSON-RPC through solana-py, the quote service through aiohttp.

Every call either returns an answer that was checked to make sense, or raises a classified
:class:`TradeError`. Both run on the executor's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors.chain import parse_prices
from xorj_actors.execution._errors import ErrorClass, TradeError, classify_chain_error, classify_exception, error_json
from xorj_actors.execution._transaction import priority_fee
from xorj_actors.execution.settings import ExecutionSettings

__all__ = ["ChainClient", "QuoteClient", "Simulation"]


def _nonsense(what: str) -> TradeError:
    return TradeError(ErrorClass.UNKNOWN, f"RPC answer makes no sense: {what}")


class Simulation:
    __slots__ = ("logs", "units")

    def __init__(self, units: int, logs: Sequence[str]) -> None:
        self.units, self.logs = units, tuple(logs)


class ChainClient:
    """solana-py's AsyncClient, with a short-lived blockhash and fee cache."""

    def __init__(self, url: str, settings: ExecutionSettings) -> None:
        self.settings = settings
        self.rpc = AsyncClient(url, commitment=Confirmed, timeout=settings.request_timeout_s)
        self._blockhash: tuple[float, Hash, int] | None = None
        self._blockhash_lock = asyncio.Lock()
        self._fee: tuple[float, int] | None = None

    async def close(self) -> None:
        await self.rpc.close()

    async def _call(self, coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, self.settings.request_timeout_s)
        except Exception as exc:  # noqa: BLE001 - classified for the caller
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
            resp = await self._call(self.rpc.get_latest_blockhash(Confirmed))
            value = resp.value
            if value.last_valid_block_height <= 0 or value.blockhash == Hash.default():
                raise _nonsense(f"getLatestBlockhash {value}")
            self._blockhash = (time.monotonic(), value.blockhash, value.last_valid_block_height)
            return value.blockhash, value.last_valid_block_height

    def forget_blockhash(self) -> None:
        """The node refused our blockhash: the next trade fetches a new one."""
        self._blockhash = None

    async def priority_fee(self, accounts: Sequence[Pubkey]) -> int:
        """Micro-lamports per compute unit from recent fees, capped (``[execution]``)."""
        cached = self._fee
        if cached is not None and time.monotonic() - cached[0] < self.settings.priority_fee_max_age_s:
            return cached[1]
        resp = await self._call(self.rpc.get_recent_prioritization_fees(list(accounts)))
        fees = [f.prioritization_fee for f in resp.value]
        fee = priority_fee(fees, self.settings.priority_fee_percentile, self.settings.max_compute_unit_price_micro_lamports)
        self._fee = (time.monotonic(), fee)
        return fee

    async def simulate(self, tx: VersionedTransaction) -> Simulation:
        """Simulate without signature checks; an error is raised classified, with the logs."""
        resp = await self._call(self.rpc.simulate_transaction(tx, sig_verify=False, commitment=Confirmed))
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
        resp = await self._call(self.rpc.send_raw_transaction(bytes(tx), opts))
        if resp.value != tx.signatures[0]:
            raise _nonsense(f"sendTransaction answered {resp.value}, the transaction is {tx.signatures[0]}")


class QuoteClient:
    """Jupiter's swap API shape (docs/LOCALNET.md): quote, swap-instructions, RFQ co-signature, prices."""

    #: The service's error codes and what they mean for the trade.
    _CODES: Mapping[str, ErrorClass] = {
        "COULD_NOT_FIND_ANY_ROUTE": ErrorClass.NO_ROUTE,
        "TOKEN_NOT_TRADABLE": ErrorClass.NO_ROUTE,
        "CIRCULAR_ARBITRAGE_IS_DISABLED": ErrorClass.NO_ROUTE,
        "QUOTE_EXPIRED": ErrorClass.QUOTE_EXPIRED,
        "QUOTE_NOT_FOUND": ErrorClass.QUOTE_EXPIRED,  # the service restarted: quote again
    }

    def __init__(self, url: str, settings: ExecutionSettings) -> None:
        self.url = url.rstrip("/")
        self.settings = settings
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout_s)
        self.session = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        assert self.session is not None
        try:
            async with self.session.request(method, self.url + path, **kwargs) as resp:
                body = await resp.read()
                if resp.status == 200:
                    try:
                        return json.loads(body)
                    except ValueError:
                        raise TradeError(ErrorClass.UNKNOWN, f"{path}: answer is not JSON") from None
                if resp.status == 400:
                    try:
                        err = json.loads(body)
                        code, message = str(err.get("errorCode")), str(err.get("error"))[:300]
                    except (ValueError, AttributeError):
                        code, message = "?", body[:300].decode("utf-8", "replace")
                    raise TradeError(self._CODES.get(code, ErrorClass.UNKNOWN), f"{path}: {code}: {message}")
                raise aiohttp.ClientResponseError(
                    resp.request_info, (), status=resp.status, message=body[:200].decode("utf-8", "replace"),
                    headers=resp.headers,
                )
        except Exception as exc:  # noqa: BLE001 - classified for the caller
            raise classify_exception(exc) from exc

    async def quote(self, input_mint: str, output_mint: str, amount: int, slippage_bps: int) -> dict[str, Any]:
        params = {
            "inputMint": input_mint,
            "outputMint": output_mint,
            "amount": str(amount),
            "slippageBps": str(slippage_bps),
            "swapMode": "ExactIn",
        }
        answer = await self._request("GET", "/quote", params=params)
        if not isinstance(answer, dict) or not isinstance(answer.get("quoteId", ""), str):
            raise TradeError(ErrorClass.UNKNOWN, "/quote: answer is not a quote")
        return answer

    async def swap_instructions(self, user: Pubkey, quote: Mapping[str, Any]) -> Any:
        """``POST /swap-instructions`` for wallet ``user``: a vault's own authority names the vault."""
        body = {"userPublicKey": str(user), "quoteResponse": dict(quote)}
        return await self._request("POST", "/swap-instructions", json=body)

    async def rfq_sign(self, quote_id: str, message: bytes, required: Sequence[Pubkey]) -> tuple[Pubkey, Signature]:
        """The market maker's signature over ``message``, checked before we rely on it."""
        body = {"quoteId": quote_id, "message": base64.b64encode(message).decode()}
        answer = await self._request("POST", "/rfq/sign", json=body)
        try:
            signer = Pubkey.from_string(answer["publicKey"])
            signature = Signature.from_string(answer["signature"])
        except (KeyError, TypeError, ValueError):
            raise TradeError(ErrorClass.UNKNOWN, "/rfq/sign: malformed answer") from None
        if signer not in required or not signature.verify(signer, message):
            raise TradeError(ErrorClass.UNKNOWN, "/rfq/sign: the signature is not a required signer's over our message")
        return signer, signature

    async def prices(self, mints: Sequence[str]) -> dict[str, float]:
        """USD mid prices (the reference for slippage checks); unknown mints are left out."""
        answer = await self._request("GET", "/price", params={"ids": ",".join(mints)})
        try:
            return parse_prices(answer, mints)
        except ValueError as exc:
            raise TradeError(ErrorClass.UNKNOWN, str(exc)) from None
