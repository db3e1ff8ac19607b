"""``xorj-actors audit restore --from-anchors``: the command's output (text or ``--json``) and exit code."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xorj_actors.audit._restore import ChainRestore
    from xorj_actors.audit.settings import AuditSettings
    from xorj_actors.config import Config

#: Exit codes, those of ``audit verify`` (docs/AUDIT.md, "CLI").
_EXIT = {"OK": 0, "BROKEN": 1, "UNANCHORED": 3}
_CANNOT = 2


def restore(config: Config, settings: AuditSettings, data_dir: Path, args: argparse.Namespace) -> int:
    """Restore, verify, report the gap, set the halt marker; the exit code (0 OK, 1 broken, 2 refused
    or cannot, 3 unanchored)."""
    from xorj_actors._progress import progress_bars
    from xorj_actors.audit._anchor import AnchorError, s3_client
    from xorj_actors.audit._keys import load_key_ring
    from xorj_actors.credentials import credential_environ  # [secrets]: env, file or AWS
    from xorj_actors.audit._restore import (
        RestoreIncomplete,
        RestoreRefused,
        begin_restore_halt,
        restore_epoch,
        restore_from_anchors,
        set_restore_halt,
    )
    from xorj_actors.audit._store import AuditStoreError

    def fail(message: str) -> int:
        if args.json:
            print(json.dumps({"ok": False, "error": message}, sort_keys=True))
        print(f"audit restore: {message}", file=sys.stderr)
        return _CANNOT

    if not settings.anchor.enabled:
        return fail("anchoring is not enabled in [audit.anchor]: there are no anchors to restore from")
    own = config.audit.for_node(config.cluster.node_id if config.cluster is not None else None)
    # The evidence of the lost head and the halt marker are this data directory's engine's.
    home = dataclasses.replace(settings, chain=own.chain_name)
    state_file = data_dir / config.kill_switch.state_file
    marker = state_file.with_name(f"{state_file.name}.halt")
    begun: list[str] = []

    def halt_first(names: Sequence[str]) -> None:
        """Fail closed: the marker is set before the first write (OSError: nothing written)."""
        if own.chain_name in names:
            begin_restore_halt(marker, names)
            begun.append(str(marker))

    try:
        key = load_key_ring(settings, config.engine.environment, credential_environ(config))
        with progress_bars(enabled=not args.no_progress and not args.json) as bars:
            report = None
            if bars:
                from xorj_actors.audit.cli import bar_per_chain

                report = bar_per_chain(bars, "audit")
            chains = restore_from_anchors(
                home, data_dir, key, s3_client(settings.anchor),
                chains=None if args.chain is None else [args.chain], state_file=state_file, progress=report,
                before_write=halt_first,
            )
    except RestoreIncomplete as exc:
        return fail(_incomplete(exc, marker if begun else None))
    except OSError as exc:  # the marker, before anything was written
        return fail(f"the halt marker {marker} cannot be set ({exc}): nothing was restored")
    except (RestoreRefused, AnchorError, AuditStoreError, ValueError) as exc:
        held = f"; the halt marker {marker} is set: the engine starts halted" if begun else ""
        return fail(f"{exc}{held}")
    halt = None
    if own.chain_name in chains:
        try:
            halt = set_restore_halt(marker, chains, restore_epoch(home, data_dir, key))
        except OSError as exc:
            return fail(f"restored, but the halt marker {marker} cannot be set ({exc}): do not start the engine "
                        "without KILL_SWITCH_ACTIVE=true")
    code = max((_EXIT[c.result.verdict.value] for c in chains.values()), key=lambda c: (c == 1, c == 3))
    warnings = _marker_scope(list(chains), own.chain_name, settings.backend, data_dir)
    if args.json:
        print(json.dumps({"ok": code == 0, "chains": [c.to_dict() for c in chains.values()],
                          "halt_marker": str(marker) if halt else None, "warnings": warnings}, sort_keys=True))
        for line in warnings:
            print(f"audit restore: WARNING: {line}", file=sys.stderr)
    else:
        _print(chains, settings.anchor.interval_s, marker if halt else None)
        for line in warnings:
            print(f"WARNING: {line}")
    return code


def _marker_scope(chains: list[str], own: str, backend: str, data_dir: Path) -> list[str]:
    """What the halt marker does not cover: it is this data directory's, read by this host's engine only."""
    out = []
    if others := [c for c in chains if c != own]:
        out.append(f"the halt marker covers only the engine of {data_dir} (chain {own}): chains {', '.join(others)} "
                   "were restored too and are other nodes' logs; on each of those nodes, start the engine halted "
                   "(KILL_SWITCH_ACTIVE=true in its environment) and let it reconcile before any recovery "
                   "(docs/OPERATIONS.md, \"Restore with several nodes\")")
    if backend == "postgres":
        out.append(f"the store is PostgreSQL, shared by every engine configured on it, but the halt marker is in {data_dir} "
                   "on this host only: every other engine that uses this store must start halted too "
                   "(KILL_SWITCH_ACTIVE=true; docs/OPERATIONS.md, \"Restore with several nodes\")")
    return out


def _incomplete(exc: RestoreIncomplete, marker: Path | None) -> str:
    """What a restore that stopped partway wrote, and how to go on: never "changed nothing"."""
    counts = ", ".join(f"chain {c}: {'an unknown number' if n is None else n}" for c, n in exc.written.items())
    known = [n for n in exc.written.values() if n is not None]
    total = f"{sum(known)}{'+' if len(known) < len(exc.written) else ''}"
    chains = " ".join(exc.written)
    halt = (f"the halt marker {marker} is set: the engine starts halted" if marker is not None else
            "no halt marker was set here (not this data directory's chain)")
    return (f"the restore stopped partway ({exc}): {total} entries were written ({counts}), so the store is no longer "
            f"empty and `audit restore` now refuses it; {halt}. Fix the cause, then for each chain ({chains}) run "
            "`audit recover --chain NAME`, which appends what the anchors hold beyond what was written, then "
            "`audit verify` (docs/OPERATIONS.md, \"Restore\")")


def _print(chains: dict[str, ChainRestore], interval_s: float, marker: Path | None) -> None:
    for c in chains.values():
        print(f"chain {c.chain}: restored {c.restored} entries from {c.anchors} anchors")
        print(f"chain {c.chain}: verify: {c.result.describe()}", file=sys.stderr if not c.result.ok else sys.stdout)
        for line in c.gap.describe(interval_s).splitlines():
            print(f"chain {c.chain}: {line}")
    if marker is not None:
        print(f"halt marker set ({marker}): the engine starts TRIGGERED, settles its open trades against the chain; "
              "recover it (docs/OPERATIONS.md, \"Recover\") once `ctl executor` shows reconciled and 0 in flight")
