"""The engine process: the supervision tree, its runtime and its data directory."""

from xorj_actors.data_dir import UMASK, DataDirError, data_dir_problem, secure_data_dir
from xorj_actors.engine._engine import EXIT_ESCALATED, EXIT_OK, Engine, EngineError, secret_envs
from xorj_actors.engine._logging import MASK, Redactor, configure_logging, trade_logger

__all__ = [
    "EXIT_ESCALATED",
    "EXIT_OK",
    "MASK",
    "UMASK",
    "DataDirError",
    "Engine",
    "EngineError",
    "Redactor",
    "configure_logging",
    "data_dir_problem",
    "secret_envs",
    "secure_data_dir",
    "trade_logger",
]
