"""`xorj-actors proof`: write a trade's signed execution proof, export them, verify one.

``verify`` exits 0 when every proof in the file holds, 1 at the first mismatch (named), 2 when
it cannot check (unreadable file, config, store or chain, or no trusted proof key: never the key
the document carries).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "main"]

EXIT_OK, EXIT_MISMATCH, EXIT_CANNOT = 0, 1, 2

_HELP = {
    "show": "write the signed proof of one trade with a final outcome (canonical JSON, one line)",
    "export": "write the proofs of every trade whose outcome was recorded in a time range (JSON lines, or one file each)",
    "verify": (
        "check every proof in FILE: its signature (under the trusted proof key), its audit entries' hashes and places in the chain (the audit "
        "store, and the anchors when [audit.anchor] is configured) and, with --rpc, the chain's own record; exit 1 names the first mismatch"
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from xorj_actors.cli import add_common_arguments, iso_time

    sub = parser.add_subparsers(dest="proof_command", required=True, metavar="ACTION")
    for name, help_text in _HELP.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        add_common_arguments(sp)
        rpc_help = ("Solana JSON-RPC URL to read the transaction from (default: [execution] rpc_url)" if name != "verify"
                    else "also fetch each transaction from this Solana JSON-RPC URL and compare")
        sp.add_argument("--rpc", metavar="URL", help=rpc_help)
        if name == "show":
            sp.add_argument("trade_id", metavar="TRADE_ID")
            sp.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
        elif name == "export":
            sp.add_argument("--since", type=iso_time, required=True, metavar="TIME", help="outcomes from this time (ISO 8601 with zone)")
            sp.add_argument("--until", type=iso_time, metavar="TIME", help="outcomes before this time")
            where = sp.add_mutually_exclusive_group()
            where.add_argument("--output", "-o", metavar="FILE", help="one proof per line in FILE (default: stdout)")
            where.add_argument("--dir", metavar="DIR", help="one file per proof in DIR (<trade id>.json)")
        else:
            sp.add_argument("file", metavar="FILE", help="a proof, or proofs one per line ('-': stdin)")
            sp.add_argument("--public-key", metavar="BASE58", help=("the proof key the proofs must be signed with (default: the [proofs.key] store "
                                                                        "of --config; one of the two is required)"))
            sp.add_argument("--no-store", action="store_true",
                            help="do not consult the audit store (the entries' place in the log then rests on the proof key)")


def _documents(path: str) -> Iterator[tuple[str, Any]]:
    """(where, document) of each proof in the file: one JSON document, or one per line, parsed
    strictly (a duplicate key, NaN or absurd nesting is refused, not read one way or another)."""
    from xorj_actors.strict_json import loads

    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        yield path, loads(text)
        return
    except ValueError:
        pass
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield f"{path}:{n}", loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: not JSON: {exc}") from None


def _write(documents: Iterator[dict[str, Any]], args: argparse.Namespace) -> int:
    from xorj_actors.audit import canonical_json

    count = 0
    if getattr(args, "dir", None):
        directory = Path(args.dir)
        directory.mkdir(parents=True, exist_ok=True)
        for doc in documents:
            name = "".join(c if c.isalnum() or c in "-_." else "_" for c in doc["trade_id"])
            (directory / f"{name}.json").write_text(canonical_json(doc) + "\n", encoding="utf-8")
            count += 1
        return count
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for doc in documents:
            out.write(canonical_json(doc) + "\n")
            count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    return count


def _issue(args: argparse.Namespace, config: Any) -> int:
    """``show`` and ``export``."""
    from xorj_actors.audit import load_key_ring, open_store, utc_timestamp
    from xorj_actors.credentials import credential_environ
    from xorj_actors.proofs import Rpc, anchor_heads, final_trade_ids, make_proof
    from xorj_actors.signers import open_backend

    data_dir = Path(args.data_dir)
    url = args.rpc or config.execution.rpc_url
    rpc = Rpc(url) if url else None
    store = open_store(config.audit, data_dir, create=False, need_chain=False)
    try:
        environ = credential_environ(config)  # [secrets]: the audit key and the proof key's PIN
        key = load_key_ring(config.audit, config.engine.environment, environ)
        anchors = anchor_heads(config.audit.anchor)
        signer = open_backend(config.proofs.key, environment=config.engine.environment, environ=environ, data_dir=data_dir)
        try:
            if args.proof_command == "show":
                trades = [args.trade_id]
            else:
                trades = final_trade_ids(store, utc_timestamp(args.since), utc_timestamp(args.until) if args.until else None)
            def proof(trade: str) -> dict[str, Any]:
                return make_proof(store, key, trade, rpc=rpc, commitment=config.proofs.commitment, anchors=anchors,
                                  signer=signer, issued_at=utc_timestamp())

            if args.proof_command == "show":
                written, failed = _write(iter([proof(args.trade_id)]), args), {}
            else:
                failed = {}
                written = _write(_each(trades, proof, failed), args)
        finally:
            signer.close()
    finally:
        store.close()
    if args.proof_command == "export":
        for trade, why in list(failed.items())[:_FAILURES_SHOWN]:
            print(f"proof export: {trade}: not issued: {why}", file=sys.stderr)
        more = len(failed) - _FAILURES_SHOWN
        print(f"proof export: {written} proofs" + (f", {len(failed)} not issued" if failed else "")
              + (f" ({more} more not listed)" if more > 0 else ""), file=sys.stderr)
    return EXIT_CANNOT if failed else EXIT_OK


#: An export names at most this many trades it could not prove (and counts the rest).
_FAILURES_SHOWN = 20


def _each(trades: Any, proof: Any, failed: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The proof of every trade that can be proven now; why not for each other one, in ``failed``.
    One trade not on the chain at the commitment yet must not cost the auditor every proof after it."""
    from xorj_actors.proofs import ProofReadError

    for trade in trades:
        try:
            yield proof(trade)
        except ProofReadError as exc:
            failed[trade] = str(exc)


def _verify(args: argparse.Namespace) -> int:
    from xorj_actors.config import load_config
    from xorj_actors.proofs import ProofMismatch, Rpc, check_document, check_with_anchors, check_with_store

    config = load_config(args.config) if args.config else None
    trusted = _trusted_key(args, config)
    if trusted is None:
        print("proof verify: cannot check: no trusted proof key (pass --public-key, or --config naming the "
              "[proofs.key] store); the key inside a proof vouches for nothing", file=sys.stderr)
        return EXIT_CANNOT
    rpc = Rpc(args.rpc) if args.rpc else None
    anchors = config.audit.anchor if config is not None and config.audit.anchor.enabled else None
    store, key = _open_store(args, config)
    try:
        checked = 0
        for where, doc in _documents(args.file):
            if not isinstance(doc, dict):
                raise ValueError(f"{where}: not a proof document")
            trade = doc.get("trade_id")
            try:
                signer = check_document(doc, trusted)
                if store is not None:
                    check_with_store(doc, store, key)
                unanchored = check_with_anchors(doc, anchors) if anchors is not None else None
                on_chain = rpc is not None and _check_chain(doc, rpc)
            except ProofMismatch as exc:
                print(f"proof verify: {where}: trade {trade}: MISMATCH {exc}", file=sys.stderr)
                return EXIT_MISMATCH
            checked += 1
            sources = ["signature", "entry hashes"] + (["audit store"] if store is not None else [])
            sources += (["anchors"] if unanchored is not None else []) + (["chain"] if on_chain else [])
            print(f"{where}: trade {trade}: OK ({', '.join(sources)}; signed by proof key {signer})")
            if unanchored:
                print(f"proof verify: {where}: not anchored yet, not checked against the anchors: {', '.join(unanchored)}", file=sys.stderr)
        if not checked:
            raise ValueError(f"{args.file}: no proof in it")
        if store is None:
            print(_NO_STORE_NOTE if anchors is None else _ANCHORS_NOTE, file=sys.stderr)
        return EXIT_OK
    finally:
        if store is not None:
            store.close()


#: What a verification without the audit store leaves unproved (docs/AUDIT.md, "Execution proofs").
_NO_STORE_NOTE = (
    "proof verify: without the audit store (--no-store) the proof key vouches for the entries; nothing checked "
    "that they are the log's entries at those places, nor that the anchored heads are the log's"
)
#: What a verification against the anchors but without the store leaves unproved.
_ANCHORS_NOTE = (
    "proof verify: without the audit store (--no-store) the anchors vouch for the anchored entries; nothing checked "
    "that the log holds no other intent or outcome of the trade, nor the HMACs"
)


def _check_chain(doc: dict[str, Any], rpc: Any) -> bool:
    """The chain's word on the proof's transaction: the record a landed one carries, or (no
    ``chain`` part: the trade expired or failed unlanded) nothing at ``finalized``. False when
    the proof names no transaction id to ask for."""
    from xorj_actors.proofs import ProofMismatch, check_against_chain, get_transaction

    signature = doc["transaction"].get("signature") if isinstance(doc.get("transaction"), dict) else None
    if signature is None and doc.get("chain") is None:
        return False
    if doc.get("chain") is not None:
        check_against_chain(doc, get_transaction(rpc, str(signature), str(doc["chain"].get("commitment"))))
    elif get_transaction(rpc, str(signature), "finalized") is not None:
        raise ProofMismatch("chain", f"missing: transaction {signature} is on the chain at finalized, the proof says it did not land")
    return True


def _trusted_key(args: argparse.Namespace, config: Any) -> str | None:
    """The proof key proofs must be signed with: ``--public-key``, else the public key of the
    ``[proofs.key]`` store of ``--config``; None when neither is given."""
    if args.public_key:
        return str(args.public_key)
    if config is None:
        return None
    from xorj_actors.credentials import credential_environ
    from xorj_actors.proofs import PROOF_KEY_ID
    from xorj_actors.signers import open_backend

    store = open_backend(config.proofs.key, environment=config.engine.environment,
                         environ=credential_environ(config), data_dir=Path(args.data_dir))
    try:
        return str(store.public_key(PROOF_KEY_ID))
    finally:
        store.close()


def _open_store(args: argparse.Namespace, config: Any) -> tuple[Any, Any]:
    """The audit store to compare with, and its HMAC keys (every epoch's); (None, None) with ``--no-store``.
    AuditStoreError when it cannot be opened (verify exits 2: a store it cannot read proves nothing)."""
    from xorj_actors.audit import AuditStoreError, load_key_ring, open_store
    from xorj_actors.config import load_config

    if args.no_store:
        return None, None
    config = config if config is not None else load_config(None)
    try:
        store = open_store(config.audit, Path(args.data_dir), create=False, need_chain=False)
    except AuditStoreError as exc:
        raise AuditStoreError(f"cannot check: the audit store cannot be opened ({exc}); pass --no-store to verify without it") from None
    try:
        from xorj_actors.credentials import credential_environ

        key = load_key_ring(config.audit, config.engine.environment, credential_environ(config))
    except ValueError:
        key = None  # the hashes and links are still compared; only the HMACs wait for the key
    return store, key


def main(args: argparse.Namespace) -> int:
    from xorj_actors.audit import AnchorError, AuditStoreError
    from xorj_actors.cli import load_config_or_exit
    from xorj_actors.proofs import ProofReadError
    from xorj_actors.signers import SignerError

    cmd = args.proof_command
    try:
        if cmd == "verify":
            return _verify(args)
        return _issue(args, load_config_or_exit(args))
    except (OSError, ValueError, AuditStoreError, AnchorError, ProofReadError, SignerError) as exc:
        print(f"proof {cmd}: {exc}", file=sys.stderr)
        return EXIT_CANNOT
