"""``xorj-actors top``: the command line (textual is imported only when the view starts)."""

from __future__ import annotations

import argparse
import math
import sys

from xorj_actors.ops.ctl import DEFAULT_TIMEOUT_S, socket_path

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments

    add_common_arguments(parser)
    parser.add_argument("--socket", metavar="PATH", help="debug socket path (default: from config and data dir)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S,
        help=f"seconds each request may take, as ctl's (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("--refresh", type=float, default=1.0, metavar="S", help="seconds between refreshes (default 1)")


def main(args: argparse.Namespace) -> int:
    for name in ("timeout", "refresh"):
        value = getattr(args, name)
        if not math.isfinite(value) or not 0.1 <= value <= 60:
            print(f"xorj-actors top: --{name} must be between 0.1 and 60 seconds", file=sys.stderr)
            return 2
    try:
        path = socket_path(args)
    except Exception as exc:  # noqa: BLE001 - e.g. a config error: say it plainly
        print(f"xorj-actors top: {exc}", file=sys.stderr)
        return 2
    if not sys.stdout.isatty():
        print("xorj-actors top: needs a terminal (use `xorj-actors ctl ... --json` in scripts)", file=sys.stderr)
        return 2
    from xorj_actors.top import Poller, TopApp

    TopApp(Poller(path, timeout=args.timeout), refresh_s=args.refresh).run()
    return 0
