"""The engine process: the supervision tree, its runtime and its data directory."""

from xorj_actors.engine._engine import EXIT_ESCALATED, EXIT_OK, Engine, EngineError
from xorj_actors.engine._logging import MASK, Redactor, configure_logging, trade_logger

__all__ = [
    "EXIT_ESCALATED",
    "EXIT_OK",
    "MASK",
    "Engine",
    "EngineError",
    "Redactor",
    "configure_logging",
    "trade_logger",
]
