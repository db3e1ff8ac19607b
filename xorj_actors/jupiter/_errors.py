"""What goes wrong with a Jupiter answer: a malformed field (named), or a refusal by the API.

A refusal is a value (:class:`Refusal`): which API, why (:class:`RefusalReason`), the API's own
code and message. The client raises it inside :class:`JupiterRefused`; the executor records the
reason. Error shapes read (Jupiter's docs, jup-ag/docs ``swap/v1/common-errors.mdx`` and
``ultra/response.mdx``, and the official clients):

- Swap API: HTTP 400 ``{"error": "...", "errorCode": "COULD_NOT_FIND_ANY_ROUTE"}``; a bad
  parameter is ``{"error": "Query parameter amount cannot be parsed: ..."}`` with no code.
- Ultra ``/order``: HTTP 400 ``{"error": "Failed to get quotes"}`` when it has no route; a 200
  without a ``transaction`` carries ``errorCode`` 1-3 and ``errorMessage``.
- Ultra ``/execute``: ``{"code": <int>, "error": "..."}`` (read as an execution, not here).
- Any API: 401/403 (key), 429 (rate limit, ``Retry-After`` not always sent), 5xx.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xorj_actors.remote_answers import MalformedAnswer, trim

__all__ = [
    "JupiterApi",
    "JupiterRefused",
    "MalformedAnswer",
    "Refusal",
    "RefusalReason",
    "refusal_from_answer",
]

class JupiterApi(enum.StrEnum):
    """The endpoints the engine speaks (their paths, below the base URL)."""

    QUOTE = "/swap/v1/quote"
    SWAP_INSTRUCTIONS = "/swap/v1/swap-instructions"
    ORDER = "/ultra/v1/order"
    EXECUTE = "/ultra/v1/execute"
    PRICE = "/price/v3"


class RefusalReason(enum.StrEnum):
    """Why an API said no, in the engine's terms."""

    #: No route for this pair and amount (Swap API routing errors, Ultra "Failed to get quotes").
    NO_ROUTE = "no_route"
    #: The token is not tradable, or its market is unknown.
    NOT_TRADABLE = "not_tradable"
    #: Our request was wrong (a parameter, same mint twice, an option combination).
    BAD_REQUEST = "bad_request"
    #: The API key is missing, wrong or revoked (401/403).
    UNAUTHORIZED = "unauthorized"
    #: 429: slow down (``retry_after_s`` when the API said how long).
    RATE_LIMITED = "rate_limited"
    #: Ultra order code 1: the taker does not hold the amount.
    INSUFFICIENT_FUNDS = "insufficient_funds"
    #: Ultra order code 2: the taker lacks SOL for fees.
    INSUFFICIENT_SOL_FOR_GAS = "insufficient_sol_for_gas"
    #: Ultra order code 3: too small for gasless support.
    BELOW_GASLESS_MINIMUM = "below_gasless_minimum"
    #: The API's own simulation of the swap failed (``simulationError``).
    SIMULATION_FAILED = "simulation_failed"
    #: 5xx, or an error we do not recognise: try again later.
    SERVER_ERROR = "server_error"


@dataclass(frozen=True, slots=True)
class Refusal:
    """An API's no, as a value."""

    api: JupiterApi
    reason: RefusalReason
    #: The API's own code (``COULD_NOT_FIND_ANY_ROUTE``, ``1``), empty when it gave none.
    code: str
    message: str
    http_status: int | None = None
    retry_after_s: float | None = None

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        status = f" (HTTP {self.http_status})" if self.http_status is not None else ""
        return f"{self.api.value}: {self.reason.value}{code}{status}: {self.message}"


class JupiterRefused(Exception):
    """Raised by the client when an API refuses; ``refusal`` says why."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


#: The Swap API's documented ``errorCode`` values (swap/v1/common-errors.mdx) and what they mean.
_CODES: Mapping[str, RefusalReason] = {
    "NO_ROUTES_FOUND": RefusalReason.NO_ROUTE,
    "COULD_NOT_FIND_ANY_ROUTE": RefusalReason.NO_ROUTE,
    "ROUTE_PLAN_DOES_NOT_CONSUME_ALL_THE_AMOUNT": RefusalReason.NO_ROUTE,
    "MARKET_NOT_FOUND": RefusalReason.NOT_TRADABLE,
    "TOKEN_NOT_TRADABLE": RefusalReason.NOT_TRADABLE,
    "NOT_SUPPORTED": RefusalReason.BAD_REQUEST,
    "CIRCULAR_ARBITRAGE_IS_DISABLED": RefusalReason.BAD_REQUEST,
    "CANNOT_COMPUTE_OTHER_AMOUNT_THRESHOLD": RefusalReason.BAD_REQUEST,
    "MAX_ACCOUNT_GREATER_THAN_MAX": RefusalReason.BAD_REQUEST,
    "INVALID_COMPUTE_UNIT_PRICE_AND_PRIORITIZATION_FEE": RefusalReason.BAD_REQUEST,
    "FAILED_TO_GET_SWAP_AND_ACCOUNT_METAS": RefusalReason.SERVER_ERROR,
}

#: Ultra ``/order`` ``errorCode`` (ultra/response.mdx, "Order Response Codes").
ORDER_CODES: Mapping[int, RefusalReason] = {
    1: RefusalReason.INSUFFICIENT_FUNDS,
    2: RefusalReason.INSUFFICIENT_SOL_FOR_GAS,
    3: RefusalReason.BELOW_GASLESS_MINIMUM,
}

#: Ultra ``/order``'s 400 message when it has no route (its only documented 400).
ULTRA_NO_ROUTE_MESSAGE = "Failed to get quotes"


def _by_status(status: int) -> RefusalReason:
    if status in (401, 403):
        return RefusalReason.UNAUTHORIZED
    if status == 429:
        return RefusalReason.RATE_LIMITED
    if status >= 500:
        return RefusalReason.SERVER_ERROR
    return RefusalReason.BAD_REQUEST


def refusal_from_answer(
    api: JupiterApi, status: int, answer: Any, *, retry_after_s: float | None = None
) -> Refusal:
    """The refusal an error answer means (``answer``: the parsed body, or raw text if not JSON).

    The status decides unless the body carries a code we know: a 400 with
    ``COULD_NOT_FIND_ANY_ROUTE`` is a missing route, not our mistake.
    """
    if isinstance(answer, Mapping):
        message = answer.get("error", answer.get("message", ""))
        code = answer.get("errorCode", answer.get("code", ""))
    else:
        message, code = answer, ""
    message = trim(message if isinstance(message, str) else str(message))
    code = code if isinstance(code, str) else str(code) if isinstance(code, int) and not isinstance(code, bool) else ""
    reason = _by_status(status)
    if status < 500 and status not in (401, 403, 429):
        if code in _CODES:
            reason = _CODES[code]
        elif api is JupiterApi.ORDER and message == ULTRA_NO_ROUTE_MESSAGE:
            reason = RefusalReason.NO_ROUTE
    return Refusal(api, reason, trim(code), message, http_status=status, retry_after_s=retry_after_s)
