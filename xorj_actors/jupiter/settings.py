"""``[jupiter]``: where Jupiter's APIs are, how to authenticate, which API trades.

The API key itself is never in the config: ``api_key_env`` names the environment variable that
holds it, sent as the ``x-api-key`` header (jup-ag/docs ``portal/setup``: every host requires
one since the keyless lite host was retired).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["ApiPolicy", "JupiterSettings", "PriorityLevel"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class ApiPolicy(enum.StrEnum):
    """Which API the executor trades through."""

    #: Ultra only: ``/order`` then ``/execute`` (RFQ market makers included).
    ULTRA = "ultra"
    #: The Swap API only: ``/quote`` then ``/swap-instructions``, sent by the engine.
    SWAP = "swap"
    #: Ultra first; the Swap API when Ultra has no route for the pair and amount.
    ULTRA_THEN_SWAP = "ultra_then_swap"


class PriorityLevel(enum.StrEnum):
    """``prioritizationFeeLamports.priorityLevelWithMaxLamports.priorityLevel`` of the Swap API."""

    #: Send no ``prioritizationFeeLamports``: the engine sets its own compute budget.
    NONE = ""
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "veryHigh"


@dataclass(frozen=True, slots=True)
class JupiterSettings:
    """``[jupiter]``."""

    #: e.g. ``https://api.jup.ag``; the paths (``/swap/v1/quote``...) are appended. Empty: the
    #: in-process localnet's quote service (``[localnet] enabled``).
    base_url: str = ""
    #: The environment variable holding the API key; empty sends no key (the localnet only).
    api_key_env: str = "JUPITER_API_KEY"
    api: ApiPolicy = ApiPolicy.ULTRA_THEN_SWAP
    #: Every request but ``/execute`` gives up after this long.
    request_timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    #: ``/execute`` waits for the transaction to land: longer. On timeout the signature is
    #: still watched, and the same signed transaction may be executed again.
    execute_timeout_s: float = 60.0
    #: How long ``/execute`` may be repeated with the same transaction and ``requestId`` (Jupiter:
    #: two minutes; after that it answers -1). Past it, an attempt whose id never became known is
    #: settled by the chain.
    execute_repeat_window_s: float = 120.0
    #: Answers larger than this are refused (a route answer is tens of kilobytes).
    max_answer_bytes: int = 2_000_000
    # --- Swap API options (sent as the official clients name them) ---
    #: ``restrictIntermediateTokens`` on ``/quote``: only liquid intermediate tokens.
    restrict_intermediate_tokens: bool = True
    #: ``maxAccounts`` on ``/quote``; 0 sends none (the API's default is 64).
    max_accounts: int = 0
    #: ``instructionVersion`` on ``/quote``: the aggregator instructions the route uses (the
    #: effect check decodes the V1 ``route``/``shared_accounts_route`` layouts).
    instruction_version: str = "V1"
    #: ``wrapAndUnwrapSol`` on ``/swap-instructions``.
    wrap_and_unwrap_sol: bool = True
    #: ``dynamicComputeUnitLimit`` on ``/swap-instructions``.
    dynamic_compute_unit_limit: bool = True
    priority_level: PriorityLevel = PriorityLevel.NONE
    #: ``maxLamports`` with ``priority_level``.
    max_priority_fee_lamports: int = 0
    # --- Ultra options ---
    #: ``excludeRouters`` on ``/order`` (comma-separated: metis, jupiterz, dflow, okx); empty: none.
    exclude_routers: str = ""

    def validate(self) -> None:
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url: must be an http(s) URL or empty")
        if self.base_url.endswith("/"):
            raise ValueError("base_url: no trailing slash (the paths start with one)")
        if self.api_key_env and not _ENV_NAME.fullmatch(self.api_key_env):
            raise ValueError("api_key_env: must be an environment variable name (the key itself never goes here)")
        for name in ("request_timeout_s", "connect_timeout_s", "execute_timeout_s", "execute_repeat_window_s"):
            if not 0 < getattr(self, name) <= 300:
                raise ValueError(f"{name}: must be in (0, 300] seconds")
        if self.connect_timeout_s > self.request_timeout_s:
            raise ValueError("connect_timeout_s: must not exceed request_timeout_s")
        if not 10_000 <= self.max_answer_bytes <= 50_000_000:
            raise ValueError("max_answer_bytes: must be between 10000 and 50000000")
        if not 0 <= self.max_accounts <= 256:
            raise ValueError("max_accounts: must be between 0 (none sent) and 256")
        if self.instruction_version not in ("V1", "V2"):
            raise ValueError("instruction_version: must be V1 or V2")
        if (self.priority_level is PriorityLevel.NONE) != (self.max_priority_fee_lamports == 0):
            raise ValueError("max_priority_fee_lamports: set it (> 0) exactly when priority_level is set")
        if self.max_priority_fee_lamports < 0:
            raise ValueError("max_priority_fee_lamports: must be >= 0")
        routers = [r for r in self.exclude_routers.split(",") if r]
        unknown = [r for r in routers if r not in ("metis", "jupiterz", "dflow", "okx")]
        if unknown:
            raise ValueError(f"exclude_routers: unknown router {unknown[0]!r} (metis, jupiterz, dflow, okx)")
