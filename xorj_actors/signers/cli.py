"""`xorj-actors keys`: the key ceremony of a key store's vault keys (init, show, rotate).

Every command, done or refused, is recorded in the audit log as ``KEY_OPERATION`` entries: one
per ``init``/``show`` naming each vault and its outcome, one per step of a ``rotate``; if the audit
log cannot be opened nothing is done.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["add_arguments", "main"]

_ACTIONS = {
    "init": "create each vault's key inside the HSM or KMS (a vault that has one keeps it) and print the public keys",
    "show": "print each vault's public key (base58): its authority, whose associated token accounts hold its tokens",
    "rotate": (
        "give each vault a new key: move its tokens and SOL on chain to the new key, then rename the keys "
        "(offline: the engine must be stopped; see docs/SIGNERS.md)"
    ),
}
_ACTOR = "keys-cli"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments

    sub = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    for name, help_text in _ACTIONS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        add_common_arguments(sp)
        sp.add_argument("--key", metavar="NAME", help=(
            "the [[signers.keys]] store (default: the only one); 'proof': the execution proofs' key ([proofs.key])"
            if name != "rotate" else "the [[signers.keys]] store (default: the only one)"))
        sp.add_argument(
            "--vaults",
            metavar="SPEC",
            help="vaults by index, id or inclusive range: 0-99,120,vault-0200 (default: every configured vault; "
            "rotate needs it)",
        )
        if name == "rotate":
            sp.add_argument("--rpc", metavar="URL", help="Solana JSON-RPC URL (default: [execution] rpc_url)")
            sp.add_argument("--no-progress", action="store_true",
                            help="no progress bar (there is none anyway unless stderr is a terminal)")


Row = tuple[str, Any, str]


def _operate(action: str, key: Any, vaults: Sequence[str], environ: Mapping[str, str], data_dir: Any) -> list[Row]:
    """Do ``action`` for ``vaults`` in ``key``'s store: (vault, public key or None, reason). Raises SignerError."""
    from xorj_actors.signers import SignerError, vault_key_board

    if key.backend == "dev_key":
        if action == "init":
            raise SignerError(f"{key.name}: dev_key keys are derived from a seed, there is nothing to create")
        board = vault_key_board(key, data_dir)
        return [(v, board.require(v), "") for v in vaults]
    if key.backend == "pkcs11":
        from xorj_actors.signers import _pkcs11

        return (_pkcs11.init_keys if action == "init" else _pkcs11.show_keys)(key.pkcs11, environ, vaults)
    from xorj_actors.signers import _kms

    return (_kms.init_keys if action == "init" else _kms.show_keys)(key.kms, vaults)


def main(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from xorj_actors.audit import AuditLog, AuditStoreError, AuditTimeout, AuditUnavailable
    from xorj_actors.config import ConfigError, load_config
    from xorj_actors.proofs import PROOF_STORE
    from xorj_actors.signers import SignerError, parse_vault_ids, vault_id

    action = args.keys_command
    try:
        config = load_config(args.config)
        keys = config.signers.keys
        if args.key == PROOF_STORE and action != "rotate":  # the execution proofs' key ([proofs.key])
            key, vaults = _proof_key(args, config)
        else:
            if args.key is not None:
                key = config.signers.key(args.key)
            elif len(keys) == 1:
                key = keys[0]
            else:
                raise ConfigError(f"several key stores configured ({', '.join(k.name for k in keys)}): choose one with --key")
            if args.vaults is not None:
                vaults = parse_vault_ids(args.vaults)
            else:
                vaults = tuple(vault_id(i) for i in range(config.vaults.count))
        rpc_url = ""
        if action == "rotate":
            rpc_url = _rotate_input(args, vaults, config)
        audit = AuditLog.open(config.audit, Path(args.data_dir), config.engine.environment)
    except (ConfigError, KeyError, ValueError, AuditStoreError) as exc:
        print(f"keys {action}: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    if action == "rotate":
        return _rotate(key, vaults, rpc_url, audit, Path(args.data_dir), progress=not args.no_progress)
    details: dict[str, Any] = {"what": action, "key": key.name, "backend": key.backend}
    code, rows = 0, []
    try:
        rows = _operate(action, key, vaults, os.environ, Path(args.data_dir))
        details["vaults"] = [
            {"vault": v, "public_key": str(pk)} if pk is not None else {"vault": v, "refused": why} for v, pk, why in rows
        ]
        refused = sum(pk is None for _, pk, _ in rows)
        details["outcome"] = "done" if not refused else "refused" if refused == len(rows) else "partly done"
        if refused:
            code = 1
            for v, pk, why in rows:
                if pk is None:
                    print(f"keys {action}: {v}: {why}", file=sys.stderr)
    except SignerError as exc:
        details.update(outcome="refused", reason=str(exc))
        print(f"keys {action}: {exc}", file=sys.stderr)
        code = 1
    try:
        audit.append("KEY_OPERATION", actor=_ACTOR, details=details, severity="INFO" if code == 0 else "WARNING")
        audit.close()
    except (AuditUnavailable, AuditTimeout) as exc:
        print(f"keys {action}: NOT AUDITED: {exc}; details: {details}", file=sys.stderr)
        code = code or 3
    for v, pk, _ in rows:
        if pk is not None:
            print(f"{v}: {pk}")
    return code


def _proof_key(args: argparse.Namespace, config: Any) -> tuple[Any, tuple[str, ...]]:
    """The proof key's store and its one key id (``--vaults`` makes no sense for it)."""
    import dataclasses

    from xorj_actors.proofs import PROOF_KEY_ID, PROOF_STORE

    if args.vaults is not None:
        raise ValueError("--vaults: the proof key is one key, not one per vault")
    return dataclasses.replace(config.proofs.key, name=PROOF_STORE), (PROOF_KEY_ID,)


def _rotate_input(args: argparse.Namespace, vaults: Sequence[str], config: Any) -> str:
    """The RPC URL of a rotation; ValueError for a rotation that must not start (nothing changed)."""
    if args.vaults is None:
        raise ValueError("name the vaults to rotate with --vaults (rotation never defaults to every vault)")
    unknown = [v for v in vaults if int(v.removeprefix("vault-")) >= config.vaults.count]
    if unknown:
        raise ValueError(f"unknown vault {', '.join(unknown)}: [vaults] count is {config.vaults.count}")
    url = args.rpc or config.execution.rpc_url
    if not url:
        raise ValueError("no RPC: pass --rpc URL or set [execution] rpc_url")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--rpc: not an http:// or https:// URL: {url!r}")
    return url


def _rotate(key: Any, vaults: Sequence[str], rpc_url: str, audit: Any, data_dir: Any, *, progress: bool) -> int:
    """Run ``keys rotate`` (every step audited as it happens); the exit code. A bar (on a terminal)
    counts the vaults done; it is redrawn from a thread, since one vault takes seconds."""
    import os

    from xorj_actors._progress import progress_bars
    from xorj_actors.audit import AuditTimeout, AuditUnavailable
    from xorj_actors.signers import SignerError
    from xorj_actors.signers._rotation import JsonRpc
    from xorj_actors.signers._rotation_run import rotate_vaults

    base = {"what": "rotate", "key": key.name, "backend": key.backend}

    def record(details: dict[str, Any], severity: str) -> None:
        audit.append("KEY_OPERATION", actor=_ACTOR, details={**base, **details}, severity=severity)

    code, rows = 0, []
    try:
        try:
            with progress_bars(enabled=progress, refresh_thread=True) as bars:
                ticker = bars.task("rotate", len(vaults), unit="vaults")
                rows = rotate_vaults(key, vaults, rpc=JsonRpc(rpc_url), data_dir=data_dir, environ=os.environ,
                                     audit=record, on_vault=lambda _vault: ticker.advance())
        except SignerError as exc:
            print(f"keys rotate: {exc}", file=sys.stderr)
            record({"outcome": "refused", "vaults": list(vaults), "reason": str(exc)}, "WARNING")
            code = 1
        for v, pk, why in rows:
            if pk is None:
                print(f"keys rotate: {v}: {why}", file=sys.stderr)
                code = 1
        audit.close()
    except (AuditUnavailable, AuditTimeout) as exc:
        print(f"keys rotate: NOT AUDITED, stopped: {exc}", file=sys.stderr)
        return 3
    for v, pk, _ in rows:
        if pk is not None:
            print(f"{v}: {pk}")
    return code
