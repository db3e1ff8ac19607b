"""The ``xorj-actors`` command: one entry point, one module per subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``main(args) -> int`` and keeps its
heavy imports inside ``main`` so that ``xorj-actors ctl`` starts fast at 3 a.m.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("xorj_actors.engine.cli", "run the supervised engine"),
    "ctl": ("xorj_actors.ops.ctl", "talk to a running engine over its debug socket"),
    "top": ("xorj_actors.top", "the live view: kill switch, actors, trades, breakers (a terminal over the debug socket)"),
    "localnet": ("xorj_actors.localnet.cli", "run the offline cluster, quote service and quant engine"),
    "audit": ("xorj_actors.audit.cli", "read and verify the hash-chained audit log"),
    "proof": ("xorj_actors.proofs.cli", "write and verify signed execution proofs of trades (checkable against the chain)"),
    "reconcile": ("xorj_actors.statements.cli", "reconcile every vault's on-chain balances against its opening balances and ledger"),
    "keys": ("xorj_actors.signers.cli", "create and show each vault's signing key in the HSM or KMS (audited)"),
    "check": ("xorj_actors.check", "check that every component is reachable and the config is fit for production"),
}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--data-dir``, shared by every subcommand that needs the engine's files."""
    parser.add_argument("--config", metavar="FILE", help="TOML config file (default: embedded defaults)")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default="var",
        help="directory for every file the process writes (default: ./var)",
    )


def iso_time(text: str) -> Any:
    """An argparse type: an ISO 8601 time with a zone (a ``datetime``)."""
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone, e.g. 2026-11-21T20:00:00Z: {text!r}")
    return value


#: Exit code of a config that cannot be used (systemd: RestartPreventExitStatus=2).
EXIT_CONFIG = 2


def load_config_or_exit(args: argparse.Namespace) -> Any:
    """Load ``args.config``; on a bad config print the key and the problem, and exit 2."""
    from xorj_actors.config import ConfigError, load_config

    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"xorj-actors {args.command}: config error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xorj-actors", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sp)
        sp.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.main(args) or 0)
    except SystemExit as exc:  # e.g. load_config_or_exit: an exit code, also for in-process callers
        return exc.code if isinstance(exc.code, int) else 1


if __name__ == "__main__":
    sys.exit(main())
