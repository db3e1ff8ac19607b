"""`xorj-actors keys`: the key ceremony of a key store's vault keys (init, show; rotate refuses).

Every command, done or refused, is recorded in the audit log as one ``KEY_OPERATION`` entry
naming each vault and its outcome; if the audit log cannot be opened nothing is done.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ROTATION_REFUSED", "add_arguments", "main"]

_ACTIONS = {
    "init": "create each vault's key inside the HSM or KMS (a vault that has one keeps it) and print the public keys",
    "show": "print each vault's public key (base58): its authority, whose associated token accounts hold its tokens",
    "rotate": "not built: refuses (a vault's key is moved by moving its tokens; see docs/SIGNERS.md)",
}
_ACTOR = "keys-cli"
#: Why ``keys rotate`` refuses (docs/SIGNERS.md, "Key rotation").
ROTATION_REFUSED = (
    "rotation is not built: a vault's tokens sit in the associated token accounts of its key, so a new key "
    "means an audited move of every token to the new key's accounts, which this version cannot do yet; "
    "the vault keeps its key (see docs/SIGNERS.md, 'Key rotation')"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments

    sub = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    for name, help_text in _ACTIONS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        add_common_arguments(sp)
        sp.add_argument("--key", metavar="NAME", help="the [[signers.keys]] store (default: the only one)")
        sp.add_argument(
            "--vaults",
            metavar="SPEC",
            help="vaults by index, id or inclusive range: 0-99,120,vault-0200 (default: every configured vault)",
        )


Row = tuple[str, Any, str]


def _operate(action: str, key: Any, vaults: Sequence[str], environ: Mapping[str, str], data_dir: Any) -> list[Row]:
    """Do ``action`` for ``vaults`` in ``key``'s store: (vault, public key or None, reason). Raises SignerError."""
    from xorj_actors.signers import SignerError, vault_key_board

    if action == "rotate":
        raise SignerError(ROTATION_REFUSED)
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
    from xorj_actors.signers import SignerError, parse_vault_ids, vault_id

    action = args.keys_command
    try:
        config = load_config(args.config)
        keys = config.signers.keys
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
        audit = AuditLog.open(config.audit, Path(args.data_dir), config.engine.environment)
    except (ConfigError, KeyError, ValueError, AuditStoreError) as exc:
        print(f"keys {action}: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
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
