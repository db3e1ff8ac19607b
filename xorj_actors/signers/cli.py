"""`xorj-actors keys`: the key ceremony for PKCS#11 and KMS keys (init, show, rotate).

Every step, done or refused, is recorded in the audit log as a ``KEY_OPERATION`` entry; if the
audit log cannot be opened nothing is done.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["add_arguments", "main"]

_ACTIONS = {
    "init": "create the key inside the HSM or KMS (refuses if it exists) and print its public key",
    "show": "print the key's public key (base58)",
    "rotate": "create a new key and make it active; the old one is kept, renamed, for verification",
}
_ACTOR = "keys-cli"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments

    sub = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    for name, help_text in _ACTIONS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        add_common_arguments(sp)
        sp.add_argument("--key", metavar="NAME", help="the [[signers.keys]] entry (default: the only one)")


def _operate(action: str, key: Any, environ: Mapping[str, str]) -> dict[str, str]:
    """Do ``action`` on ``key``; returns what to print and audit. Raises SignerError."""
    from xorj_actors.signers import SignerError

    if key.backend == "pkcs11":
        from xorj_actors.signers import _pkcs11 as backend

        args: tuple[Any, ...] = (key.pkcs11, environ)
    elif key.backend == "kms":
        from xorj_actors.signers import _kms as backend

        args = (key.kms,)
    else:
        raise SignerError(f"{key.name}: keys {action} manages pkcs11 and kms keys, not {key.backend}")
    if action == "init":
        return {"public_key": str(backend.init_key(*args))}
    if action == "show":
        return {"public_key": str(backend.show_key(*args))}
    old, new, retired = backend.rotate_key(*args)
    return {"public_key": str(new), "old_public_key": str(old), "old_key_kept_as": retired}


def main(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from xorj_actors.audit import AuditLog, AuditStoreError, AuditTimeout, AuditUnavailable
    from xorj_actors.config import ConfigError, load_config
    from xorj_actors.signers import SignerError

    action = args.keys_command
    try:
        config = load_config(args.config)
        keys = config.signers.keys
        if args.key is not None:
            key = config.signers.key(args.key)
        elif len(keys) == 1:
            key = keys[0]
        else:
            raise ConfigError(f"several keys configured ({', '.join(k.name for k in keys)}): choose one with --key")
        audit = AuditLog.open(config.audit, Path(args.data_dir), config.engine.environment)
    except (ConfigError, KeyError, ValueError, AuditStoreError) as exc:
        print(f"keys {action}: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    details: dict[str, Any] = {"what": action, "key": key.name, "backend": key.backend}
    code = 0
    try:
        details.update(_operate(action, key, os.environ))
        details["outcome"] = "done"
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
    if details["outcome"] == "done":
        for field in ("public_key", "old_public_key", "old_key_kept_as"):
            if field in details:
                print(f"{field}: {details[field]}")
        if action != "show":
            print(f"set [[signers.keys]] public_key = \"{details['public_key']}\" for key {key.name!r} "
                  "once the vault authority is moved to it")
    return code
