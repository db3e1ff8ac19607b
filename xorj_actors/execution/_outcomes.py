"""The outcomes the executor answers with, built one way (pure: request and record in, message out)."""

from __future__ import annotations

from typing import Any

from xorj_actors.chain import SignatureOutcome
from xorj_actors.execution._errors import ErrorClass
from xorj_actors.execution._ledger import TradeRecord
from xorj_actors.execution._messages import TradeOutcome, TradeRequest, TradeStatus

__all__ = ["DROPPED_BY_HALT", "HANDED_OVER", "handed_over", "outcome", "rejected", "replayed", "reused"]

#: Why a trade an emergency halt cancelled before it signed anything was rejected.
DROPPED_BY_HALT = "dropped by an emergency halt before signing"
#: Why a trade of a vault whose lease went to another node ends here without an outcome.
HANDED_OVER = "handed over: this node lost the vault's lease; the new owner settles the trade and records its outcome"


def outcome(
    req: TradeRequest,
    status: TradeStatus,
    result: SignatureOutcome | None,
    error: str | None,
    cls: ErrorClass | None,
    rec: TradeRecord,
) -> TradeOutcome:
    """The outcome of a trade that made attempts: the chain's answer, else its last attempt's."""
    last = rec.attempts[-1] if rec.attempts else None
    return TradeOutcome(
        trade_id=req.trade_id,
        vault_id=req.vault_id,
        input_mint=req.input_mint,
        output_mint=req.output_mint,
        status=status,
        signature=result.signature if result is not None else (last.signature if last else None),
        slot=result.slot if result is not None else None,
        confirmations=result.confirmations if result is not None else 0,
        error=error,
        error_class=cls.value if cls is not None else None,
        in_amount=last.in_amount if last else 0,
        out_amount=last.out_amount if last else 0,
        attempts=len(rec.attempts),
        api=last.api if last else None,
    )


def rejected(req: TradeRequest, cls: ErrorClass, reason: str) -> TradeOutcome:
    """Refused before anything was signed."""
    return TradeOutcome(
        trade_id=req.trade_id, vault_id=req.vault_id, input_mint=req.input_mint, output_mint=req.output_mint,
        status=TradeStatus.REJECTED, error=reason, error_class=cls.value,
    )


def handed_over(req: TradeRequest) -> TradeOutcome:
    """Not final, and not recorded here: the vault's new lease holder settles it (cluster)."""
    return TradeOutcome(
        trade_id=req.trade_id, vault_id=req.vault_id, input_mint=req.input_mint, output_mint=req.output_mint,
        status=TradeStatus.TIMED_OUT, error=HANDED_OVER, error_class=ErrorClass.FENCED.value,
    )


def reused(req: TradeRequest) -> TradeOutcome:
    """The id already names another trade: refused, nothing executed."""
    return rejected(
        req, ErrorClass.REUSED_ID,
        f"trade id {req.trade_id} already names another trade (vault, mints or amount differ); nothing executed",
    )


def replayed(done: TradeOutcome) -> TradeOutcome:
    """A recorded outcome, answering a repeated request."""
    return done if done.replayed else TradeOutcome(**{**_fields(done), "replayed": True})


def _fields(message: Any) -> dict[str, Any]:
    return {name: getattr(message, name) for name in type(message).__slots__ if not name.startswith("_")}
