"""``JupiterClient``: the four trading endpoints and the price API over aiohttp.

Requests are spelled as the official clients send them (jup-ag/jupiter-swap-api-client,
jup-ag/jupiter-quote-api-node, jup-ag/docs OpenAPI specs): query parameters and body fields in
camelCase, amounts as decimal integers, the key in ``x-api-key``. Every answer is parsed strictly
(``MalformedAnswer``) and checked against what was asked (mints, amount, mode, slippage): an
answer for another trade is refused. An API's no raises :class:`JupiterRefused`. Transport
failures (``aiohttp.ClientError``, ``asyncio.TimeoutError``) propagate as they are: the executor
classifies them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import aiohttp
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors import strict_json
from xorj_actors.jupiter._errors import JupiterApi, JupiterRefused, MalformedAnswer, Refusal, RefusalReason, refusal_from_answer, trim
from xorj_actors.jupiter._fields import BPS_MAX, U64_MAX
from xorj_actors.jupiter._instructions import SwapInstructions, parse_swap_instructions
from xorj_actors.jupiter._price import MAX_IDS, UsdPrice, parse_prices
from xorj_actors.jupiter._quote import Quote, SwapMode, parse_quote
from xorj_actors.jupiter._ultra import UltraExecution, UltraOrder, parse_execution, parse_order
from xorj_actors.jupiter.settings import JupiterSettings, PriorityLevel
from xorj_actors.remote_answers import read_bounded, retry_after

__all__ = ["JupiterClient", "MissingApiKey", "api_headers"]

_JSON_BODY = {"Content-Type": "application/json"}


class MissingApiKey(ValueError):
    """``[jupiter] api_key_env`` names a variable that is unset or empty."""

    def __init__(self, variable: str) -> None:
        super().__init__(f"[jupiter] api_key_env: environment variable {variable} is unset or empty")
        self.variable = variable


def _flag(value: bool) -> str:
    return "true" if value else "false"


def api_headers(settings: JupiterSettings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers of every request to Jupiter: JSON, and ``x-api-key`` from the variable that
    ``settings.api_key_env`` names (none when it names none).

    Raises:
        MissingApiKey: the variable is named but empty or unset.
    """
    headers = {"Accept": "application/json"}
    if settings.api_key_env:
        key = (os.environ if environ is None else environ).get(settings.api_key_env, "")
        if not key:
            raise MissingApiKey(settings.api_key_env)
        headers["x-api-key"] = key
    return headers


class JupiterClient:
    """Jupiter's Swap, Ultra and Price APIs. Use ``async with`` (or ``open``/``close``)."""

    def __init__(
        self,
        settings: JupiterSettings,
        *,
        base_url: str = "",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """
        Args:
            settings: ``[jupiter]``.
            base_url: overrides ``settings.base_url`` (the localnet's quote service).
            environ: where the API key is read (``os.environ`` by default).

        Raises:
            ValueError: no base URL; :class:`MissingApiKey`: the key's variable is empty.
        """
        self.settings = settings
        self.base_url = (base_url or settings.base_url).rstrip("/")
        if not self.base_url:
            raise ValueError("[jupiter] base_url: no URL configured")
        self._headers = api_headers(settings, environ)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(
                total=self.settings.request_timeout_s, sock_connect=self.settings.connect_timeout_s
            )
            self._session = aiohttp.ClientSession(timeout=timeout, headers=self._headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> JupiterClient:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _call(
        self,
        api: JupiterApi,
        method: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        data: str | None = None,
        timeout_s: float | None = None,
    ) -> tuple[int, Any, Mapping[str, str], bytes]:
        """One request (``body`` as JSON, or ``data``, JSON text already): ``(status, parsed body
        or text, headers, the body's bytes)``; the body is size-bounded."""
        await self.open()
        assert self._session is not None
        # Only an explicit timeout is passed: aiohttp reads ``timeout=None`` as "no timeout at all".
        extra: dict[str, Any] = {}
        if timeout_s is not None:
            extra["timeout"] = aiohttp.ClientTimeout(total=timeout_s, sock_connect=self.settings.connect_timeout_s)
        limit = self.settings.max_answer_bytes
        if data is not None:
            extra["data"], extra["headers"] = data.encode(), _JSON_BODY
        async with self._session.request(method, self.base_url + api.value, params=params, json=body, **extra) as resp:
            raw = await read_bounded(resp, limit)
            try:
                answer: Any = strict_json.loads(raw)
            except ValueError:
                answer = trim(raw[:2000].decode("utf-8", "replace"))
                if resp.status == 200:
                    raise MalformedAnswer(api.value, f"answer is not strict JSON: {answer[:80]!r}") from None
            return resp.status, answer, resp.headers, raw

    def _refuse(self, api: JupiterApi, status: int, answer: Any, headers: Mapping[str, str]) -> JupiterRefused:
        return JupiterRefused(refusal_from_answer(api, status, answer, retry_after_s=retry_after(headers)))

    async def _get_ok(self, api: JupiterApi, params: Mapping[str, str]) -> tuple[Any, bytes]:
        """The parsed answer and its bytes, or the API's refusal raised."""
        status, answer, headers, raw = await self._call(api, "GET", params=params)
        if status != 200:
            raise self._refuse(api, status, answer, headers)
        return answer, raw

    # --- Swap API ---------------------------------------------------------------------------

    async def quote(
        self,
        input_mint: Pubkey,
        output_mint: Pubkey,
        amount: int,
        slippage_bps: int,
        *,
        swap_mode: SwapMode = SwapMode.EXACT_IN,
    ) -> Quote:
        """``GET /swap/v1/quote``; the answer must be a quote for exactly this request."""
        _check_request(amount, slippage_bps)
        params = {
            "inputMint": str(input_mint),
            "outputMint": str(output_mint),
            "amount": str(amount),
            "slippageBps": str(slippage_bps),
            "swapMode": swap_mode.value,
            "restrictIntermediateTokens": _flag(self.settings.restrict_intermediate_tokens),
            "instructionVersion": self.settings.instruction_version,
        }
        if self.settings.max_accounts:
            params["maxAccounts"] = str(self.settings.max_accounts)
        answer, raw = await self._get_ok(JupiterApi.QUOTE, params)
        quote = parse_quote(answer, raw.decode())  # strict JSON was UTF-8: kept as received
        _check_answer(quote.input_mint, quote.output_mint, quote.swap_mode, input_mint, output_mint, swap_mode)
        fixed = quote.in_amount if swap_mode is SwapMode.EXACT_IN else quote.out_amount
        if fixed != amount:
            raise MalformedAnswer("inAmount" if swap_mode is SwapMode.EXACT_IN else "outAmount", f"{fixed}, we asked {amount}")
        if quote.slippage_bps != slippage_bps:
            raise MalformedAnswer("slippageBps", f"{quote.slippage_bps}, we asked {slippage_bps}")
        return quote

    def swap_instructions_body(self, user: Pubkey) -> dict[str, Any]:
        """The ``/swap-instructions`` request body (field names as the official clients send), all
        of it but ``quoteResponse``, which :meth:`swap_instructions` splices in as received."""
        body: dict[str, Any] = {"userPublicKey": str(user)}
        body["wrapAndUnwrapSol"] = self.settings.wrap_and_unwrap_sol
        body["dynamicComputeUnitLimit"] = self.settings.dynamic_compute_unit_limit
        if self.settings.priority_level is not PriorityLevel.NONE:
            body["prioritizationFeeLamports"] = {
                "priorityLevelWithMaxLamports": {
                    "priorityLevel": self.settings.priority_level.value,
                    "maxLamports": self.settings.max_priority_fee_lamports,
                }
            }
        return body

    async def swap_instructions(self, quote: Quote, user: Pubkey) -> SwapInstructions:
        """``POST /swap/v1/swap-instructions`` for ``user`` (the vault's authority).

        Raises:
            JupiterRefused: the API refused, or its own simulation failed (``simulationError``).
        """
        api = JupiterApi.SWAP_INSTRUCTIONS
        body = self.swap_instructions_body(user)
        # The quote goes back as it came: spliced in as JSON text, not parsed and written again.
        text = json.dumps(body, separators=(",", ":"))[:-1] + ',"quoteResponse":' + quote.answer + "}"
        status, answer, headers, _ = await self._call(api, "POST", data=text)
        if status != 200:
            raise self._refuse(api, status, answer, headers)
        route = parse_swap_instructions(answer)
        if route.simulation_error is not None:
            error = route.simulation_error
            raise JupiterRefused(Refusal(api, RefusalReason.SIMULATION_FAILED, error.code, error.message, http_status=status))
        return route

    # --- Ultra --------------------------------------------------------------------------------

    async def order(self, input_mint: Pubkey, output_mint: Pubkey, amount: int, taker: Pubkey) -> UltraOrder:
        """``GET /ultra/v1/order`` for ``taker``; the order must carry a transaction it signs.

        Raises:
            JupiterRefused: no route (HTTP 400 "Failed to get quotes"), or no transaction
                (``errorCode`` 1-3: funds, SOL for gas, gasless minimum).
        """
        _check_request(amount, 0)
        params = {"inputMint": str(input_mint), "outputMint": str(output_mint), "amount": str(amount), "taker": str(taker)}
        if self.settings.exclude_routers:
            params["excludeRouters"] = self.settings.exclude_routers
        order = parse_order((await self._get_ok(JupiterApi.ORDER, params))[0], taker=taker)
        _check_answer(order.input_mint, order.output_mint, order.swap_mode, input_mint, output_mint, SwapMode.EXACT_IN)
        if order.in_amount != amount:
            raise MalformedAnswer("inAmount", f"{order.in_amount}, we asked {amount}")
        if order.transaction is None:
            assert order.error is not None
            raise JupiterRefused(order.error)
        return order

    async def execute(self, signed: VersionedTransaction, request_id: str) -> UltraExecution:
        """``POST /ultra/v1/execute``. Safe to repeat with the same signed transaction and
        ``requestId`` for two minutes (it polls the status, never executes twice; after that it
        answers -1). An answer with a ``code`` (HTTP 200, 400 or 500) is an execution."""
        api = JupiterApi.EXECUTE
        body = {"signedTransaction": base64.b64encode(bytes(signed)).decode(), "requestId": request_id}
        status, answer, headers, _ = await self._call(api, "POST", body=body, timeout_s=self.settings.execute_timeout_s)
        if status not in (200, 400, 500) or not isinstance(answer, Mapping) or "code" not in answer:
            raise self._refuse(api, status, answer, headers)
        execution = parse_execution(answer)
        ours = signed.signatures[0] if signed.signatures else Signature.default()
        # Our signature is first unless an RFQ maker pays the fee (Jupiter adds the maker's).
        if execution.signature is not None and ours != Signature.default() and execution.signature != ours:
            raise MalformedAnswer("signature", f"{execution.signature} is not our transaction's {ours}")
        return execution

    # --- Price API ------------------------------------------------------------------------------

    async def prices(self, mints: Iterable[Pubkey]) -> dict[Pubkey, UsdPrice]:
        """``GET /price/v3?ids=``, at most 50 ids a request; mints without a price are left out."""
        wanted = list(dict.fromkeys(mints))
        batches = [wanted[i : i + MAX_IDS] for i in range(0, len(wanted), MAX_IDS)]
        calls = [self._get_ok(JupiterApi.PRICE, {"ids": ",".join(map(str, batch))}) for batch in batches]
        answers = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls)  # no task for one
        prices: dict[Pubkey, UsdPrice] = {}
        for batch, (answer, _) in zip(batches, answers, strict=True):
            prices.update(parse_prices(answer, batch))
        return prices


def _check_request(amount: int, slippage_bps: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= U64_MAX:
        raise ValueError(f"amount: must be a positive u64, got {amount!r}")
    if isinstance(slippage_bps, bool) or not isinstance(slippage_bps, int) or not 0 <= slippage_bps <= BPS_MAX:
        raise ValueError(f"slippage_bps: must be between 0 and {BPS_MAX}, got {slippage_bps!r}")


def _check_answer(
    got_in: Pubkey, got_out: Pubkey, got_mode: SwapMode, want_in: Pubkey, want_out: Pubkey, want_mode: SwapMode
) -> None:
    if got_in != want_in:
        raise MalformedAnswer("inputMint", f"{got_in}, we asked {want_in}")
    if got_out != want_out:
        raise MalformedAnswer("outputMint", f"{got_out}, we asked {want_out}")
    if got_mode is not want_mode:
        raise MalformedAnswer("swapMode", f"{got_mode.value}, we asked {want_mode.value}")
