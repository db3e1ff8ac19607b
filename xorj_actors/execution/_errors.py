"""Every failure gets a class, and the class decides what happens next (docs/EXECUTION.md)."""

from __future__ import annotations

import enum
import json
import random
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2 as httpx
from solana.exceptions import SolanaRpcException
from solana.rpc.core import RPCException

from xorj_actors.execution.settings import RetrySettings
from xorj_actors.quotas import QuotaDropped, QuotaError, QuotaExpired, QuotaRefused

__all__ = ["ErrorClass", "TradeError", "backoff_s", "classify_chain_error", "classify_exception", "error_json", "rpc_error"]

#: SPL Token's ``InsufficientFunds`` custom error.
_TOKEN_INSUFFICIENT_FUNDS = 1
#: Jupiter's ``SlippageToleranceExceeded``.
_JUPITER_SLIPPAGE = 6001


class ErrorClass(str, enum.Enum):
    """What a failure means for the trade."""

    #: Connection refused or cut, HTTP 5xx, 429: retry with exponential backoff and jitter.
    NETWORK = "network"
    RATE_LIMITED = "rate_limited"
    #: The program failed (on chain or in simulation), or an answer came too late: linear backoff.
    PROGRAM = "program"
    TIMEOUT = "timeout"
    #: The transaction cannot land as built: replace it (new quote, blockhash or budget).
    EXPIRED_BLOCKHASH = "expired_blockhash"
    COMPUTE_BUDGET = "compute_budget"
    QUOTE_EXPIRED = "quote_expired"
    #: Never retried.
    INSUFFICIENT_FUNDS = "insufficient_funds"
    SLIPPAGE = "slippage"
    NO_ROUTE = "no_route"
    HALTED = "halted"
    BREAKER_OPEN = "breaker_open"
    SIGNER = "signer"
    AUDIT = "audit"
    UNSETTLED = "unsettled"
    #: Read back after a crash with no signed attempt: it was never sent and never can land.
    NEVER_SENT = "never_sent"
    #: This node does not hold the vault's lease (cluster, docs/CLUSTER.md): nothing is signed
    #: or sent for it here. Never retried here; not a failure of the trade for the breakers.
    FENCED = "fenced"
    #: The id was already used for another trade: refused, the recorded one stands.
    REUSED_ID = "reused_id"
    #: Anything not understood: not retried, reported as a system error.
    UNKNOWN = "unknown"

    @property
    def retry(self) -> str | None:
        """``"exponential"``, ``"linear"``, ``"replace"`` or None (never retried)."""
        return _RETRY.get(self)


_RETRY = {
    ErrorClass.NETWORK: "exponential",
    ErrorClass.RATE_LIMITED: "exponential",
    ErrorClass.PROGRAM: "linear",
    ErrorClass.TIMEOUT: "linear",
    ErrorClass.EXPIRED_BLOCKHASH: "replace",
    ErrorClass.COMPUTE_BUDGET: "replace",
    ErrorClass.QUOTE_EXPIRED: "replace",
}


class TradeError(Exception):
    """A classified failure of one step of a trade."""

    def __init__(self, error_class: ErrorClass, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.retry_after_s = retry_after_s


def backoff_s(error: TradeError, attempt: int, retry: RetrySettings, rng: random.Random) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    kind = error.error_class.retry
    if kind == "exponential":
        cap = min(retry.network_max_s, retry.network_initial_s * 2 ** (attempt - 1))
        delay = rng.uniform(0, cap)  # full jitter: many vaults must not retry in step
        if error.retry_after_s is not None:
            delay = max(delay, error.retry_after_s)
        return delay
    if kind == "linear":
        return retry.program_step_s * attempt
    return 0.0


def error_json(err: Any) -> str:
    """A solders transaction error (or None) as Agave's JSON: ``{"InstructionError":[2,{"Custom":1}]}``."""
    if err is None:
        return "null"
    return json.dumps(_agave(err), separators=(",", ":"))


def _agave(err: Any) -> Any:
    """Solders' error objects in Agave's JSON shape (solders 0.29 has no common to_json)."""
    name = type(err).__name__
    if name == "TransactionErrorInstructionError":
        return {"InstructionError": [err.index, _agave(err.err)]}
    if name == "InstructionErrorCustom":
        return {"Custom": err.code}
    if name in ("TransactionErrorInsufficientFundsForRent", "TransactionErrorDuplicateInstruction"):
        return {name.removeprefix("TransactionError"): [getattr(err, "account_index", getattr(err, "index", 0))]}
    text = str(err)
    # Fieldless enums print as ``TransactionErrorFieldless.BlockhashNotFound``.
    return text.rsplit(".", 1)[-1]


def classify_chain_error(err_json: str) -> ErrorClass:
    """Class of an on-chain or simulation error, given in Agave's JSON shape."""
    try:
        err = json.loads(err_json)
    except ValueError:
        return ErrorClass.UNKNOWN
    if isinstance(err, str):
        return {
            "BlockhashNotFound": ErrorClass.EXPIRED_BLOCKHASH,
            "InsufficientFundsForFee": ErrorClass.INSUFFICIENT_FUNDS,
            "AccountNotFound": ErrorClass.INSUFFICIENT_FUNDS,  # the fee payer has never been funded
            "WouldExceedMaxBlockCostLimit": ErrorClass.NETWORK,
            "WouldExceedAccountDataBlockLimit": ErrorClass.NETWORK,
        }.get(err, ErrorClass.UNKNOWN)
    if isinstance(err, dict) and "InstructionError" in err:
        detail = err["InstructionError"]
        inner = detail[1] if isinstance(detail, list) and len(detail) == 2 else None
        if isinstance(inner, dict) and "Custom" in inner:
            code = inner["Custom"]
            if code == _TOKEN_INSUFFICIENT_FUNDS:
                return ErrorClass.INSUFFICIENT_FUNDS
            if code == _JUPITER_SLIPPAGE:
                return ErrorClass.SLIPPAGE
            return ErrorClass.PROGRAM
        if inner in ("ComputationalBudgetExceeded", "ProgramFailedToComplete"):
            return ErrorClass.COMPUTE_BUDGET
        if inner == "InsufficientFunds":
            return ErrorClass.INSUFFICIENT_FUNDS
        return ErrorClass.PROGRAM
    return ErrorClass.UNKNOWN


def classify_exception(exc: BaseException) -> TradeError:
    """A :class:`TradeError` for an exception raised by an HTTP or JSON-RPC call."""
    if isinstance(exc, TradeError):
        return exc
    if isinstance(exc, QuotaError):
        return _quota(exc)
    if isinstance(exc, TimeoutError):
        return TradeError(ErrorClass.TIMEOUT, f"no answer in time: {exc!r}")
    if isinstance(exc, SolanaRpcException):
        cause = exc.__cause__
        if isinstance(cause, httpx.HTTPStatusError):
            return _http_status(cause.response.status_code, cause.response.headers.get("retry-after"), str(exc))
        if isinstance(cause, httpx.TimeoutException):
            return TradeError(ErrorClass.TIMEOUT, f"JSON-RPC timed out: {cause!r}")
        if isinstance(cause, httpx.TransportError):
            return TradeError(ErrorClass.NETWORK, f"JSON-RPC unreachable: {cause!r}")
        return TradeError(ErrorClass.UNKNOWN, f"JSON-RPC failed: {cause!r}")
    if isinstance(exc, RPCException):
        return _rpc_error(exc)
    if isinstance(exc, aiohttp.ClientResponseError):
        return _http_status(exc.status, (exc.headers or {}).get("Retry-After"), str(exc))
    if isinstance(exc, aiohttp.ClientError | ConnectionError):
        return TradeError(ErrorClass.NETWORK, f"unreachable: {exc!r}")
    return TradeError(ErrorClass.UNKNOWN, f"{type(exc).__name__}: {exc}")


def _quota(exc: QuotaError) -> TradeError:
    # A call that did not get its budget's turn was never made: no failure of the network.
    if isinstance(exc, QuotaExpired):  # only quotes wait with a deadline: the new attempt re-quotes
        return TradeError(ErrorClass.QUOTE_EXPIRED, str(exc))
    if isinstance(exc, QuotaDropped):
        return TradeError(ErrorClass.HALTED, str(exc))
    assert isinstance(exc, QuotaRefused), exc
    return TradeError(ErrorClass.RATE_LIMITED, str(exc))


def _http_status(status: int, retry_after: str | None, text: str) -> TradeError:
    if status == 429:
        try:
            after = float(retry_after) if retry_after is not None else None
        except ValueError:
            after = None  # an HTTP date: fall back to our own backoff
        return TradeError(ErrorClass.RATE_LIMITED, f"rate limited (429, Retry-After {retry_after})", retry_after_s=after)
    if status >= 500:
        return TradeError(ErrorClass.NETWORK, f"server error {status}: {text[:200]}")
    return TradeError(ErrorClass.UNKNOWN, f"HTTP {status}: {text[:200]}")


def _rpc_error(exc: RPCException) -> TradeError:
    return rpc_error(exc.args[0] if exc.args else None)


def rpc_error(payload: Any) -> TradeError:
    """A JSON-RPC error answer (solders' parsed error message) as the trade's classified error."""
    name = type(payload).__name__
    if name == "SendTransactionPreflightFailureMessage":
        err = error_json(payload.data.err)
        logs = payload.data.logs or []
        return TradeError(classify_chain_error(err), f"preflight failed: {err}; logs: {' | '.join(logs[-3:])}")
    message = getattr(payload, "message", None) or str(payload)
    if name == "NodeUnhealthyMessage":
        return TradeError(ErrorClass.NETWORK, f"node unhealthy: {message}")
    return TradeError(ErrorClass.UNKNOWN, f"JSON-RPC error {name}: {message}")
