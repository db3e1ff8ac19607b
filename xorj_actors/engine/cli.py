"""`xorj-actors run`: the supervised engine process."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_arguments", "main", "with_node_id"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments

    add_common_arguments(parser)
    parser.add_argument("--log-json", action="store_true", help="log JSON lines (default: human lines on a terminal)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument(
        "--node-id",
        metavar="ID",
        help="this node's id in the cluster, over [cluster] node_id (needs a [cluster] section; docs/CLUSTER.md)",
    )
    parser.add_argument(
        "--jupiter-api",
        choices=("ultra", "swap", "ultra_then_swap"),
        help="trade through this Jupiter API, over the config's [jupiter] api (make run JUPITER_API=swap)",
    )


def main(args: argparse.Namespace) -> int:
    # Before any thread exists, so that every thread inherits the mask (see ops/_signals.py).
    from xorj_actors.ops import block_signals

    block_signals()

    import os
    import sys
    from pathlib import Path

    from loguru import logger

    from xorj_actors.cli import EXIT_CONFIG, load_config_or_exit
    from xorj_actors.engine import (
        UMASK,
        DataDirError,
        Engine,
        EngineError,
        configure_logging,
        secret_envs,
        secure_data_dir,
    )

    # Whatever the caller's umask (a manual run: 022), nothing this process creates is
    # readable by others; the data directory is made private before logging writes into it.
    os.umask(UMASK)
    config = load_config_or_exit(args)
    if args.jupiter_api:
        from dataclasses import replace

        from xorj_actors.jupiter import ApiPolicy

        config = replace(config, jupiter=replace(config.jupiter, api=ApiPolicy(args.jupiter_api)))
    if args.node_id is not None or config.cluster is not None:
        try:
            config = with_node_id(config, args.node_id)
        except ValueError as exc:  # before the data directory: a refused config changes nothing
            print(f"xorj-actors run: config error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    from xorj_actors.credentials import missing_report, open_credentials

    provider, resolution = open_credentials(config, install=True)  # every one required, or exit 2
    if resolution.missing:
        print(f"xorj-actors run: cannot start: {missing_report(resolution)}", file=sys.stderr)
        return EXIT_CONFIG  # a restart cannot fix it until the secrets are put in place
    environ = provider.environ()
    data_dir = Path(args.data_dir)
    try:
        changed = secure_data_dir(data_dir)
    except DataDirError as exc:
        print(f"xorj-actors run: cannot start: {exc}", file=sys.stderr)
        return EXIT_CONFIG  # a restart cannot fix it: systemd's RestartPreventExitStatus
    redactor = configure_logging(
        json_lines=True if args.log_json else None,
        level=args.log_level,
        log_dir=data_dir / "logs",
        secret_envs=secret_envs(config),
        environ=environ,
    )
    for change in changed:
        logger.warning("data directory: mode of {} (only the engine's user may read it)", change)
    engine = Engine(config, data_dir, environ=environ, handle_signals=True, redactor=redactor, credentials=provider)
    try:
        engine.start()
    except EngineError as exc:
        logger.critical("cannot start: {}", exc)
        return 1
    code = engine.wait(progress_every_s=10.0)
    hung = engine.stop()
    if hung:
        logger.error("abandoned at shutdown: {}", hung)
    logger.info("exit {}", code)
    return code



def with_node_id(config: Any, node_id: str | None) -> Any:
    """``config`` with ``[cluster] node_id`` resolved from ``--node-id``, and the node's audit
    chain named after it (unless ``[audit] chain`` names one); ValueError says what is wrong."""
    from dataclasses import replace

    if config.cluster is None:
        raise ValueError("--node-id: needs a [cluster] section")
    try:
        cluster = config.cluster.with_node_id(node_id)
    except ValueError as exc:
        raise ValueError(f"cluster.{exc}") from None
    try:  # each node writes its own hash chain in the shared store (docs/AUDIT.md, "Chains")
        audit = config.audit.for_node(cluster.node_id)
    except ValueError as exc:
        raise ValueError(f"audit.{exc}") from None
    return replace(config, cluster=cluster, audit=audit)
