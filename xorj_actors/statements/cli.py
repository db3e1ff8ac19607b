"""``xorj-actors reconcile``: every vault's statement, on demand (docs/AUDIT.md, "Statement reconciliation").

Exit codes: 0 every vault matches to the base unit; 1 a mismatch (each one audited as a
SECURITY_VIOLATION; 1 too when that entry could not be written, said on stderr); 2 a bad config
or argument; 3 the chain or the audit log could not be read or written (no mismatch concluded).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["add_arguments", "main", "vault_accounts"]

EXIT_MISMATCH, EXIT_CONFIG, EXIT_UNREADABLE = 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments

    add_common_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--rpc", metavar="URL", help="the node's JSON-RPC URL (default: [execution] rpc_url)")
    parser.add_argument("--vaults", metavar="SPEC", help="only these vaults: 0-99,120,vault-0200 (default: [vaults] count)")


def vault_accounts(config: Any, authority: Callable[[str], Any], vaults: Sequence[str]) -> list[Any]:
    """Each vault's accounts: its authority and the authority's ATA for every ``[[tokens]]`` mint."""
    from xorj_actors.statements import VaultAccounts
    from xorj_actors.tokens import vault_token_account

    registry = config.token_registry()
    out = []
    for vault in vaults:
        owner = authority(vault)
        out.append(VaultAccounts(vault, str(owner), {str(t.mint): str(vault_token_account(owner, t.mint)) for t in registry}))
    return out


def _authorities(config: Any, data_dir: Any) -> Callable[[str], Any]:
    """Vault id -> authority: the signing store's development keys, or ``[localnet] vault_authorities``;
    an unlisted vault's, the localnet's public development key: in development only (ValueError)."""
    from solders.pubkey import Pubkey

    from xorj_actors.signers import LOCALNET_DEV_SEED, dev_vault_keypair, vault_id, vault_key_board

    listed = {vault_id(i): Pubkey.from_string(k) for i, k in enumerate(config.localnet.vault_authorities)}
    if config.signers.keys:
        key = config.signers.key(config.execution.signer) if config.execution.signer else config.signers.keys[0]
        if key.backend == "dev_key":
            return vault_key_board(key, data_dir).require
        if not listed:
            raise ValueError(
                f"signers.keys {key.name!r}: a {key.backend} store's vault keys are read by the engine; run "
                "`xorj-actors ctl reconcile` against it, or list them in [localnet] vault_authorities"
            )
    environment = config.engine.environment

    def authority(vault: str) -> Any:
        if vault in listed:
            return listed[vault]
        if environment != "development":  # the localnet's seed is public: never a real vault's key
            raise ValueError(
                f"{vault}: not in [localnet] vault_authorities; the public localnet development key stands in "
                f"for it only in development (engine.environment is {environment!r})"
            )
        return dev_vault_keypair(LOCALNET_DEV_SEED, vault).pubkey()

    return authority


def main(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from xorj_actors.audit import AuditLog, AuditStoreError, AuditTimeout, AuditUnavailable, load_key_ring, open_store
    from xorj_actors.cli import load_config_or_exit
    from xorj_actors.signers import parse_vault_ids, vault_id
    from xorj_actors.statements import ACTOR, ChainError, RpcReader, reconcile, record_findings, render

    config = load_config_or_exit(args)
    data_dir = Path(args.data_dir)
    rpc = args.rpc or config.execution.rpc_url
    try:
        if not rpc:
            raise ValueError("--rpc: required when [execution] rpc_url is not set")
        vaults = parse_vault_ids(args.vaults) if args.vaults else tuple(vault_id(i) for i in range(config.vaults.count))
        accounts = vault_accounts(config, _authorities(config, data_dir), vaults)
        from xorj_actors.credentials import credential_environ  # the key from env, file or AWS

        environ = credential_environ(config)
        key = load_key_ring(config.audit, config.engine.environment, environ)
        for name in (config.audit.hmac_key_env, config.audit.retired_hmac_keys_env):
            if environ.get(name) and not os.environ.get(name):  # the writer below reads it from this process's environment
                os.environ[name] = environ[name]
    except (KeyError, ValueError) as exc:
        print(f"xorj-actors reconcile: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        store = open_store(config.audit, data_dir, create=False)
        log = AuditLog.open(config.audit, data_dir, config.engine.environment)
    except AuditStoreError as exc:
        print(f"xorj-actors reconcile: audit log: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE

    def append(kind: str, details: dict[str, Any], correlation: str | None, severity: str) -> None:
        log.append(kind, actor=ACTOR, details=details, correlation_id=correlation, severity=severity)

    report = None
    try:
        settings = config.reconciliation
        report = reconcile(store, key, RpcReader(rpc, settings.rpc_timeout_s), accounts, defer_max_s=settings.defer_max_s)
        record_findings(report, append)  # after the report: a refused append loses no finding
    except (ChainError, AuditStoreError, AuditUnavailable, AuditTimeout) as exc:
        print(f"xorj-actors reconcile: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    finally:
        store.close()
        try:
            log.close()
        except (AuditStoreError, AuditUnavailable) as exc:  # entries still queued: not written
            if report is not None:
                report.audit_errors.append(f"closing the audit log: {exc}")
    out = report.as_dict()
    print(json.dumps(out, sort_keys=True) if args.json else render(out))
    for why in report.audit_errors:
        print(f"xorj-actors reconcile: audit entry not written: {why}", file=sys.stderr)
    if report.mismatches:
        return EXIT_MISMATCH
    return EXIT_UNREADABLE if report.unreadable or report.audit_errors else 0
