"""Budgets for every external endpoint, and fair waiting when one binds (docs/QUOTAS.md).

Pure rules apart from asyncio: :mod:`~xorj_actors.quotas._bucket` is the token bucket (state and
clock in, decision out), :class:`FairQueue` the waiting, :class:`Quotas` the object the engine
owns, :class:`TokenSource` the seam for a budget shared across processes, :func:`turn` one
budgeted call (RPC clients class theirs with :func:`rpc_endpoint`).
"""

from xorj_actors.quotas._bucket import (
    MAX_RETRY_AFTER_S,
    BucketState,
    full_rate,
    give_back,
    new_state,
    on_success,
    on_throttled,
    retry_after_seconds,
    take,
)
from xorj_actors.quotas._queue import FairQueue, QuotaDropped, QuotaError, QuotaExpired, QuotaRefused, Waiting
from xorj_actors.quotas._quotas import Answer, Permit, Quotas
from xorj_actors.quotas._render import render_quotas
from xorj_actors.quotas._source import LocalTokenSource, SourceStatus, TokenSource
from xorj_actors.quotas._turn import Scope, Turn, budget_scope, current_scope, rpc_endpoint, turn
from xorj_actors.quotas.settings import Endpoint, EndpointBudget, QuotaSettings

__all__ = [
    "MAX_RETRY_AFTER_S",
    "Answer",
    "BucketState",
    "Endpoint",
    "EndpointBudget",
    "FairQueue",
    "LocalTokenSource",
    "Permit",
    "QuotaDropped",
    "QuotaError",
    "QuotaExpired",
    "QuotaRefused",
    "QuotaSettings",
    "Quotas",
    "Scope",
    "SourceStatus",
    "TokenSource",
    "Turn",
    "Waiting",
    "budget_scope",
    "current_scope",
    "full_rate",
    "give_back",
    "new_state",
    "on_success",
    "on_throttled",
    "render_quotas",
    "retry_after_seconds",
    "rpc_endpoint",
    "take",
    "turn",
]
