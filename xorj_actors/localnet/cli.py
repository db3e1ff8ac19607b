"""`xorj-actors localnet` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments

    add_common_arguments(parser)


def main(args: argparse.Namespace) -> int:
    raise SystemExit("xorj-actors localnet: not built yet")
