"""`xorj-actors audit`: verify, read, export and anchor the hash-chained audit log (every chain)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xorj_actors.audit._keys import KeyRing
    from xorj_actors.audit._store import Store
    from xorj_actors.audit._verify import AnchorHead, SegmentReader, VerifyResult
    from xorj_actors.audit.settings import AnchorSettings, AuditSettings
    from xorj_actors.config import Config

_COMMANDS = ("verify", "chains", "tail", "show", "export", "anchor", "recover", "restore", "bucket")
#: The actions that read every chain of the store unless ``--chain`` names one.
_ALL_CHAINS = ("verify", "chains")
#: The long-running actions: a progress bar on a terminal (stderr), unless ``--no-progress``.
_WITH_PROGRESS = ("verify", "export", "recover", "restore")
#: ``audit export`` moves its bar every this many entries (not every entry: it costs).
_EXPORT_TICK = 1000

#: ``audit verify`` exit codes (docs/AUDIT.md, "CLI"). 2 is also every other action's "cannot".
EXIT_OK = 0  # chain and HMACs intact, every entry covered by a matching anchor
EXIT_BROKEN = 1  # tampered: the first broken entry is named
EXIT_CANNOT = 2  # cannot verify: config, store, key or anchors unreadable
EXIT_UNANCHORED = 3  # chain and HMACs intact, but some or all entries are covered by no anchor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments, iso_time

    sub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    helps = {
        "verify": (
            "re-compute every chain and its HMACs, compare with the anchors; exit 0 intact and every entry "
            "anchored, 3 intact but (partly) unanchored, 1 broken (any chain), 2 cannot verify"
        ),
        "chains": "the store's chains (one per node), with their heads",
        "tail": "the newest entries (filtered), one line each",
        "show": "matching entries in full",
        "export": "matching entries as JSON lines",
        "anchor": "archive the chain head and the unanchored entries to S3 now",
        "recover": "after a restore, append the entries the anchors hold beyond the log's end (engine stopped)",
        "restore": (
            "rebuild an EMPTY store (every chain, or --chain) from the anchors, verify it and report the gap to the "
            "lost head (engine stopped); exit 0 restored and OK, 1 broken, 2 refused or cannot"
        ),
        "bucket": (
            "compare the anchor bucket's Object Lock and lifecycle rules with [audit.anchor] (--apply: create the "
            "bucket with Object Lock if missing, put the rules, read them back); exit 0 as configured, 1 drift, "
            "2 cannot"
        ),
    }
    for name in _COMMANDS:
        sp = sub.add_parser(name, help=helps[name], description=helps[name])
        add_common_arguments(sp)
        if name == "bucket":
            sp.add_argument("--apply", action="store_true", help="create the bucket if missing and put the rules")
            continue
        sp.add_argument(
            "--chain", metavar="NAME",
            help=("only this chain" if name in _ALL_CHAINS else
                  "only this chain (default: every chain the anchors hold)" if name == "restore" else
                  "the chain to read (default: [audit] chain, else [cluster] node_id, else 'default')"),
        )
        if name == "restore":
            sp.add_argument("--from-anchors", action="store_true", required=True,
                            help="the source: the S3 Object Lock anchors (the only one)")
            sp.add_argument("--json", action="store_true", help="the report as one JSON object on stdout")
        if name == "verify":
            sp.add_argument("--no-anchors", action="store_true", help="do not compare with the anchored heads")
        if name in _WITH_PROGRESS:
            sp.add_argument("--no-progress", action="store_true",
                            help="no progress bar (there is none anyway unless stderr is a terminal)")
        if name in ("tail", "show", "export"):
            sp.add_argument("--trade-id", metavar="ID", help="only entries with this correlation (trade) id")
            sp.add_argument("--type", action="append", default=[], metavar="TYPE", help="event type (repeatable)")
            sp.add_argument("--since", type=iso_time, metavar="TIME", help="from this time (ISO 8601 with zone)")
            sp.add_argument("--until", type=iso_time, metavar="TIME", help="before this time (ISO 8601 with zone)")
        if name == "tail":
            sp.add_argument("-n", "--lines", type=int, default=20, metavar="N", help="how many (default 20)")
        if name == "show":
            sp.add_argument("--sequence", type=int, metavar="N", help="the entry with this sequence number")
            sp.add_argument("--id", dest="entry_id", metavar="UUID", help="the entry with this id")
        if name == "export":
            sp.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    from xorj_actors.audit._chain import EventType, utc_timestamp

    known = {e.value for e in EventType}
    for t in args.type:
        if t not in known:
            raise ValueError(f"--type: unknown event type {t!r} (one of {', '.join(sorted(known))})")
    return {
        "correlation_id": args.trade_id,
        "event_types": tuple(args.type),
        "since": utc_timestamp(args.since) if args.since else None,
        "until": utc_timestamp(args.until) if args.until else None,
    }


def _line(e: Any) -> str:
    corr = e.correlation_id or "-"
    return f"{e.sequence:>8} {e.timestamp} {e.severity:<8} {e.event_type:<18} {e.actor} {corr} {e.details}"


def _verify(store: Store, key: KeyRing, anchor: AnchorSettings, args: argparse.Namespace) -> int:
    """``audit verify``: print each chain's verdict (OK, UNANCHORED, BROKEN) and return the exit
    code of the worst. A store whose only chain is the default one prints one line, as ever."""
    from xorj_actors._progress import progress_bars
    from xorj_actors.audit._anchor import anchor_prefix, list_chain_anchors, read_segment, s3_client
    from xorj_actors.audit._verify import Verdict, verify_chains
    from xorj_actors.audit.settings import DEFAULT_CHAIN

    anchors: dict[str, list[AnchorHead]] | None = None  # None: not consulted
    segments: SegmentReader | None = None
    no_anchors, chain = args.no_anchors, args.chain
    if no_anchors:
        why = "--no-anchors: the anchors were not consulted"
    elif not anchor.enabled:
        why = "anchoring is disabled: [audit.anchor] enabled = false"
    else:
        client = s3_client(anchor)
        anchors = list_chain_anchors(client, anchor)
        segments = functools.partial(read_segment, client, anchor)
        why = "no anchor in s3://{bucket}/{prefix} yet"
    with progress_bars(enabled=not args.no_progress) as bars:
        results = verify_chains(store, key, anchors, chains=None if chain is None else [chain], segments=segments,
                                progress=bar_per_chain(bars, "verify") if bars else None)
    named = list(results) != [DEFAULT_CHAIN]
    for name, result in results.items():
        line = result.describe(why.format(bucket=anchor.bucket, prefix=anchor_prefix(anchor, name)))
        stream = sys.stderr if result.verdict is Verdict.BROKEN else sys.stdout
        print(f"chain {name}: {line}" if named else line, file=stream)
    return _worst(list(results.values()))


def bar_per_chain(bars: Any, action: str) -> Callable[[str, int, int], None]:
    """A ``progress(chain, done, total)`` that moves one bar per chain (or per step)."""
    tickers: dict[str, Any] = {}

    def report(chain: str, done: int, total: int) -> None:
        if chain not in tickers:
            tickers[chain] = bars.task(f"{action} {chain}", total)
        tickers[chain].update(done, total)

    return report


def _export(store: Store, filters: dict[str, Any], args: argparse.Namespace) -> None:
    """``audit export``: JSON lines to ``--output`` or stdout; the bar follows the position in the log."""
    import json

    from xorj_actors._progress import progress_bars
    from xorj_actors.audit._store import read_head, select_entries

    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    # The entries on the terminal itself: a bar among them would only garble them.
    show = not args.no_progress and (out is not sys.stdout or not sys.stdout.isatty())
    try:
        with progress_bars(enabled=show) as bars:
            head = read_head(store) if bars else None
            ticker = bars.task("export", 0 if head is None else head.sequence)
            for i, e in enumerate(select_entries(store, **filters), 1):
                out.write(json.dumps(e.to_dict(), sort_keys=True, ensure_ascii=False) + "\n")
                if not i % _EXPORT_TICK and bars:
                    ticker.update(e.sequence)
            if head is not None:
                ticker.update(head.sequence)
    finally:
        if out is not sys.stdout:
            out.close()


def _worst(results: list[VerifyResult]) -> int:
    from xorj_actors.audit._verify import Verdict

    verdicts = {r.verdict for r in results}
    for verdict, code in ((Verdict.BROKEN, EXIT_BROKEN), (Verdict.UNANCHORED, EXIT_UNANCHORED)):
        if verdict in verdicts:
            return code
    return EXIT_OK


def _chains(store: Store) -> None:
    """``audit chains``: one line per chain: its name, table, head; this process's is marked."""
    from xorj_actors.audit._store import chain_store, list_chains, read_head

    for name in list_chains(store):
        other = chain_store(store, name)
        head = read_head(other)
        state = f"{head.sequence} entries, head at {head.timestamp}" if head else "empty"
        mine = "  (this process's chain)" if name == store.chain else ""
        print(f"{name:<32} {other.table:<46} {state}{mine}")


def _settings(config: Config, chain: str | None) -> AuditSettings:
    """``[audit]`` at the chain to read: ``--chain``, else the process's own (ValueError if bad)."""
    from xorj_actors.audit.settings import chain_name_problem

    if chain is not None:
        problem = chain_name_problem(chain)
        if problem is not None:
            raise ValueError(f"--chain: {problem}")
        return dataclasses.replace(config.audit, chain=chain)
    return config.audit.for_node(config.cluster.node_id if config.cluster is not None else None)


def _bucket(anchor: AnchorSettings, *, apply: bool) -> int:
    """``audit bucket``: Object Lock on, lifecycle rules as configured (``apply``: made so)."""
    from xorj_actors import probes
    from xorj_actors.audit._anchor import ensure_bucket, s3_client
    from xorj_actors.audit._lifecycle import Drift, apply_lifecycle, lifecycle_drift, lifecycle_rule

    where = f"s3://{anchor.bucket}"
    if not anchor.enabled:
        print("audit bucket: anchoring is not enabled in [audit.anchor]", file=sys.stderr)
        return EXIT_CANNOT
    try:
        client = s3_client(anchor)
        if apply:
            ensure_bucket(client, anchor)
        drift = apply_lifecycle(client, anchor) if apply else lifecycle_drift(client, anchor)
        if not probes.object_lock_enabled(client, anchor.bucket):
            drift.insert(0, Drift("Object Lock is not enabled: anchors could be deleted (it is only set at creation)"))
    except Exception as exc:  # noqa: BLE001 - botocore raises many types; all mean "cannot"
        print(f"audit bucket: {where}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_CANNOT
    for problem in drift:
        print(f"DRIFT: {where}: {problem}")
    if not drift:
        rule = lifecycle_rule(anchor)
        moves = ", ".join(f"{t['StorageClass']} after {t['Days']} days" for t in rule["Transitions"]) if rule else "none"
        print(f"OK: {where}: Object Lock enabled, lifecycle as configured (transitions: {moves}; no expiry)")
    if anchor.lifecycle_archive_days and anchor.archive_storage_class != "GLACIER_IR":
        print(f"WARNING: {where}: anchors older than {anchor.lifecycle_archive_days} days go to"
              f" {anchor.archive_storage_class}, where S3 refuses to read them until each is restored"
              " (aws s3api restore-object, hours): restore, verify against the anchors and proof checks stop"
              ' at them (docs/AUDIT.md, "Archived anchors"); GLACIER_IR reads at once', file=sys.stderr)
    return 1 if drift else 0


def main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from xorj_actors.audit._anchor import AnchorError, Anchorer, recover_from_anchors, s3_client
    from xorj_actors.audit._keys import load_key_ring
    from xorj_actors.audit._store import AuditStoreError, open_store, select_entries
    from xorj_actors.config import ConfigError, load_config

    cmd = args.audit_command
    try:
        config = load_config(args.config)
        if cmd == "bucket":
            return _bucket(config.audit.anchor, apply=args.apply)
        settings = _settings(config, args.chain)
        if cmd == "restore":
            from xorj_actors.audit._restore_cli import restore

            return restore(config, settings, Path(args.data_dir), args)
        store = open_store(settings, Path(args.data_dir), create=False, need_chain=cmd not in _ALL_CHAINS)
    except (ConfigError, AuditStoreError, ValueError) as exc:
        print(f"audit {args.audit_command}: {exc}", file=sys.stderr)
        return EXIT_CANNOT
    try:
        if cmd in ("verify", "anchor", "recover"):
            from xorj_actors.credentials import credential_environ  # the key from env, file or AWS

            key = load_key_ring(settings, config.engine.environment, credential_environ(config))
        if cmd == "verify":
            return _verify(store, key, settings.anchor, args)
        if cmd == "chains":
            _chains(store)
            return 0
        if cmd in ("anchor", "recover"):
            if not settings.anchor.enabled:
                print(f"audit {cmd}: anchoring is not enabled in [audit.anchor]", file=sys.stderr)
                return EXIT_CANNOT
            if cmd == "recover":
                from xorj_actors._progress import progress_bars

                with progress_bars(enabled=not args.no_progress) as bars:
                    restored = recover_from_anchors(store, key, s3_client(settings.anchor), settings.anchor,
                                                    progress=bar_per_chain(bars, "recover") if bars else None)
                print(f"restored {restored} entries from the anchors; run `audit verify` next")
                return 0
            head = Anchorer(settings.anchor, store, key).anchor_now()
            print(f"anchored up to entry {head.sequence}: {head.source}" if head else "already anchored")
            return 0
        filters = _filters(args)
        if cmd == "tail":
            if args.lines < 1:
                raise ValueError("--lines: must be >= 1")
            for e in select_entries(store, last=args.lines, **filters):
                print(_line(e))
        elif cmd == "show":
            for e in select_entries(store, sequence=args.sequence, entry_id=args.entry_id, **filters):
                print(json.dumps(e.to_dict(), indent=2, ensure_ascii=False))
        else:
            _export(store, filters, args)
        return 0
    except (ValueError, AuditStoreError, AnchorError) as exc:
        print(f"audit {args.audit_command}: {exc}", file=sys.stderr)
        return EXIT_CANNOT
    finally:
        store.close()
