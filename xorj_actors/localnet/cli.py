"""``xorj-actors localnet``: serve the offline cluster, quote service and quant engine until signalled."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments

    add_common_arguments(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the URLs as one JSON object on the first line of output",
    )


def main(args: argparse.Namespace) -> int:
    import json
    import signal
    import sys

    from xorj_actors.cli import load_config_or_exit
    from xorj_actors.localnet.runner import Localnet

    config = load_config_or_exit(args)
    # Blocked before any thread starts, so only sigwait below ever sees them (FIELD-NOTES).
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    localnet = Localnet(config.localnet, tokens=config.token_registry())
    try:
        localnet.start()
    except OSError as exc:
        print(f"xorj-actors localnet: cannot listen: {exc}", file=sys.stderr)
        return 1
    try:
        urls = localnet.urls
        if args.json:
            print(json.dumps(urls), flush=True)
        else:
            for name, url in urls.items():
                print(f"{name:6} {url or '(not available)'}", flush=True)
        signal.sigwait(signals)
    finally:
        localnet.stop()
    return 0
