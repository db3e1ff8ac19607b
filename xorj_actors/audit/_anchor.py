"""Anchoring: chain heads and the segments behind them, archived to S3 under Object Lock.

One object per anchor, named ``<prefix><sequence:020d>-<hash>-<hmac>.jsonl`` (the default chain,
as ever) or ``<prefix><chain>/<sequence:020d>-<hash>-<hmac>.jsonl`` (any other chain) so that
listing the bucket yields every head of every chain without reading a body. The body is JSON
lines: a header (naming its chain), then every entry since the previous anchor. Each object is
written in COMPLIANCE mode: nobody, not even the account root, can delete or overwrite it before
its retention date.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from loguru import logger

from xorj_actors.audit._chain import AuditEntry, canonical_json, parse_utc_timestamp
from xorj_actors.audit._epochs import read_epochs
from xorj_actors.audit._keys import KeyRing, as_ring
from xorj_actors.audit._store import KILL_SWITCH_ALIVE_ACTOR, Store, insert_entries, iter_rows, read_head
from xorj_actors.audit._verify import AnchorHead, batch_counter, verify_rows
from xorj_actors.audit.settings import DEFAULT_CHAIN, AnchorSettings

#: Entries per anchor object; a longer backlog is archived in several objects.
MAX_SEGMENT = 50_000
#: An idle engine writes only the kill switch's ``alive`` entries (every ``alive_every_s``): the
#: periodic anchor does not archive them on their own (an object each, kept for years under
#: COMPLIANCE) but with the next other entry, or once they are this old (an idle node writes one
#: anchor a day), or at stop.
ALIVE_ONLY_MAX_AGE = timedelta(days=1)
#: Rows per INSERT when restoring (SQLite allows 32766 parameters, 11 per entry).
_RESTORE_CHUNK = 2000
#: Added to every anchor's retention: the deploy/iam policies deny a put whose remaining retention
#: is under ``retention_days`` days, and S3 counts from its own clock when the request arrives. An
#: hour covers the request's way there and any clock skew S3 accepts (SigV4 refuses over 15 min).
RETENTION_MARGIN = timedelta(hours=1)
#: An anchor's key after the prefix: ``[<chain>/]<sequence>-<hash>-<hmac>.jsonl``.
_KEY = re.compile(r"(?:([a-z0-9][a-z0-9-]{0,31})/)?(\d{20})-([0-9a-f]{64})-([0-9a-f]{64})\.jsonl")


class AnchorError(RuntimeError):
    """An anchor could not be read or written, or the log refused to be anchored."""


def s3_client(settings: AnchorSettings, *, timeout_s: float | None = None) -> Any:
    """A boto3 S3 client for ``settings`` (credentials from the standard AWS environment).

    ``timeout_s``: a probe (``xorj-actors check``): that connect and read timeout, no retries.
    """
    import boto3
    from botocore.config import Config

    if timeout_s is None:
        config = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})
    else:
        config = Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"mode": "standard", "max_attempts": 1})
    return boto3.client("s3", endpoint_url=settings.endpoint_url or None, region_name=settings.region, config=config)


def ensure_bucket(client: Any, settings: AnchorSettings) -> None:
    """Create the bucket with Object Lock enabled if it does not exist (development, tests)."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=settings.bucket)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kwargs: dict[str, Any] = {"Bucket": settings.bucket, "ObjectLockEnabledForBucket": True}
    if settings.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
    client.create_bucket(**kwargs)


def anchor_prefix(settings: AnchorSettings, chain: str = DEFAULT_CHAIN) -> str:
    """Where ``chain``'s anchors are: the prefix itself for the default chain (today's anchors),
    else ``<prefix><chain>/``."""
    return settings.prefix if chain == DEFAULT_CHAIN else f"{settings.prefix}{chain}/"


def list_chain_anchors(client: Any, settings: AnchorSettings) -> dict[str, list[AnchorHead]]:
    """Every anchored head under the prefix, by chain (a chain with no anchor is absent), each
    chain's by sequence.

    Raises:
        AnchorError: S3 cannot be listed (unreachable, no credentials, no bucket).
    """
    heads: dict[str, list[AnchorHead]] = {}
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=settings.prefix)
    try:
        for page in pages:
            for obj in page.get("Contents", ()):
                m = _KEY.fullmatch(obj["Key"][len(settings.prefix):])
                if m is not None and m[1] != DEFAULT_CHAIN:  # "default/" is no chain's place
                    heads.setdefault(m[1] or DEFAULT_CHAIN, []).append(AnchorHead(int(m[2]), m[3], m[4], obj["Key"]))
    except Exception as exc:  # noqa: BLE001 - botocore raises many types; all mean "no anchors"
        raise AnchorError(f"cannot list anchors in s3://{settings.bucket}/{settings.prefix}: {exc}") from exc
    return {chain: sorted(found, key=lambda a: a.sequence) for chain, found in heads.items()}


def list_anchors(client: Any, settings: AnchorSettings, chain: str = DEFAULT_CHAIN) -> list[AnchorHead]:
    """Every anchored head of ``chain``, by sequence.

    Raises:
        AnchorError: S3 cannot be listed (unreachable, no credentials, no bucket).
    """
    prefix = anchor_prefix(settings, chain)
    heads = []
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix)
    try:
        for page in pages:
            for obj in page.get("Contents", ()):
                m = _KEY.fullmatch(obj["Key"][len(prefix):])
                if m is not None and m[1] is None:  # not another chain's, under this one's prefix
                    heads.append(AnchorHead(int(m[2]), m[3], m[4], obj["Key"]))
    except Exception as exc:  # noqa: BLE001 - botocore raises many types; all mean "no anchors"
        raise AnchorError(f"cannot list anchors in s3://{settings.bucket}/{prefix}: {exc}") from exc
    return sorted(heads, key=lambda a: a.sequence)


def read_segment(client: Any, settings: AnchorSettings, head: AnchorHead) -> list[AuditEntry]:
    """The entries archived with ``head`` (a restore, a verify against the anchors, a proof).

    Raises:
        AnchorError: S3 refused or failed the read; an anchor archived in ``GLACIER`` or
            ``DEEP_ARCHIVE`` (not restored) is named, with how to restore it.
    """
    try:
        body = client.get_object(Bucket=settings.bucket, Key=head.source)["Body"].read().decode("utf-8")
    except Exception as exc:  # noqa: BLE001 - botocore raises many types; all mean "not read"
        raise AnchorError(_unreadable(settings, head.source, exc)) from exc
    lines = body.splitlines()[1:]
    out = []
    for line in lines:
        d = json.loads(line)
        d["details"] = canonical_json(d["details"])
        out.append(AuditEntry(**d))
    return out


def _unreadable(settings: AnchorSettings, key: str, exc: Exception) -> str:
    """Why anchor ``key`` could not be read; for an archived one, the restore procedure."""
    where = f"s3://{settings.bucket}/{key}"
    error = getattr(exc, "response", {}).get("Error", {})
    if error.get("Code") != "InvalidObjectState":
        return f"cannot read anchor {where}: {exc}"
    # A lifecycle rule moved it to GLACIER or DEEP_ARCHIVE: S3 serves it only from a restored copy.
    request = '{"Days":7,"GlacierJobParameters":{"Tier":"Standard"}}'
    return (
        f"anchor {where} is archived ({error.get('StorageClass') or 'GLACIER or DEEP_ARCHIVE'}) and cannot be read"
        f" until it is restored: aws s3api restore-object --bucket {settings.bucket} --key {key}"
        f" --restore-request '{request}', then, once aws s3api head-object --bucket {settings.bucket} --key {key}"
        ' shows Restore: ongoing-request="false" (hours; 12 or more from DEEP_ARCHIVE), run this again'
        ' (docs/AUDIT.md, "Archived anchors")'
    )


def recover_from_anchors(
    store: Store, key: bytes | KeyRing, client: Any, settings: AnchorSettings,
    progress: Callable[[str, int, int], None] | None = None,
) -> int:
    """Append the anchored entries a restored log is missing; returns how many were written.

    Run with the engine stopped (the writer must be the only one). The local log must verify up to
    its end, and every recovered segment must continue the chain (hashes, HMACs, anchored head)
    before anything is written. ``progress(step, done, total)`` follows both steps (``local log``:
    entries verified, per batch; ``from anchors``: entries restored, per segment).

    Raises:
        AnchorError: the local log or a segment does not verify; nothing more is written.
    """
    anchors = list_anchors(client, settings, store.chain)
    head = read_head(store)
    seq, last_hash = (head.sequence, head.hash) if head else (0, store.genesis)
    report = progress or (lambda step, done, total: None)
    on_batch = batch_counter(functools.partial(report, "local log"), seq)
    local = verify_rows(
        iter_rows(store, on_batch=on_batch), key, anchors=[a for a in anchors if a.sequence <= seq],
        start_hash=store.genesis,
    )
    if not local.ok:
        raise AnchorError(f"the local log does not verify (entry {local.broken_sequence}: {local.reason})")
    ring = as_ring(key)
    epoch = ring.find(local.epochs[-1]) if local.epochs else None  # each segment continues the last epoch
    restored, missing = 0, max(0, max((a.sequence for a in anchors), default=seq) - seq)  # local may be ahead
    report("from anchors", 0, missing)
    for anchor in (a for a in anchors if a.sequence > seq):
        entries = [e for e in read_segment(client, settings, anchor) if e.sequence > seq]
        result = verify_rows(
            (e.row() for e in entries), ring, anchors=[anchor], start_sequence=seq, start_hash=last_hash,
            epoch_key=epoch,
        )
        if not result.ok:
            raise AnchorError(f"anchor {anchor.source} does not continue the log: {result.reason}")
        with store.db.atomic():
            for i in range(0, len(entries), _RESTORE_CHUNK):
                insert_entries(store, entries[i : i + _RESTORE_CHUNK])
        seq, last_hash = anchor.sequence, anchor.hash
        epoch = ring.find(result.epochs[-1]) if result.epochs else epoch
        restored += len(entries)
        report("from anchors", restored, missing)
        logger.warning("audit restored entries {}..{} from {}", entries[0].sequence, seq, anchor.source)
    return restored


class Anchorer:
    """Archives the chain head and the entries since the last anchor, now or every ``interval_s``."""

    def __init__(self, settings: AnchorSettings, store: Store, key: bytes | KeyRing, client: Any | None = None) -> None:
        self._settings = settings
        self._store = store
        #: The known audit keys; replaced (one assignment) when the writer rotates the key.
        self.keys = key
        self._client = client or s3_client(settings)
        self._last: AnchorHead | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def anchor_now(self, *, periodic: bool = False) -> AnchorHead | None:
        """Archive everything not yet anchored; the newest head written, or ``None`` if up to date.

        ``periodic`` (the background loop): ``alive`` entries alone are left for a later anchor
        (:data:`ALIVE_ONLY_MAX_AGE`); the last anchor at stop and ``audit anchor`` take them.

        Raises:
            AnchorError: the unanchored entries do not verify (nothing is archived), or S3 failed.
        """
        with self._lock:
            if self._last is None:
                existing = list_anchors(self._client, self._settings, self._store.chain)
                self._last = existing[-1] if existing else AnchorHead(0, self._store.genesis, "", "genesis")
            written = None
            while head := self._anchor_segment(self._last, periodic):
                self._last = written = head
            return written

    def _anchor_segment(self, last: AnchorHead, periodic: bool) -> AnchorHead | None:
        rows = list(iter_rows(self._store, after=last.sequence, limit=MAX_SEGMENT))
        if not rows or (periodic and _alive_only(rows, datetime.now(timezone.utc))):
            return None
        # The segment starts in the epoch of its first entry, as the chain's rotations bound it:
        # a retired key's entries after the rotation that retired it are never anchored.
        ring = as_ring(self.keys)
        try:
            start_key = read_epochs(self._store, ring).key_at(last.sequence + 1)
        except ValueError as exc:
            raise AnchorError(f"refusing to anchor a broken chain: {exc}") from None
        if start_key is None:
            raise AnchorError(f"refusing to anchor: the key of entry {last.sequence + 1}'s epoch is not known")
        result = verify_rows(rows, ring, start_sequence=last.sequence, start_hash=last.hash, epoch_key=start_key)
        if not result.ok:
            raise AnchorError(f"refusing to anchor a broken chain: entry {result.broken_sequence}: {result.reason}")
        tail = AuditEntry(*rows[-1])
        header = {
            "version": 1,
            "chain": self._store.chain,
            "from_sequence": rows[0][1],
            "to_sequence": tail.sequence,
            "previous_anchor_hash": last.hash,
            "head": {"sequence": tail.sequence, "hash": tail.hash, "hmac": tail.hmac, "timestamp": tail.timestamp},
        }
        lines = [json.dumps(header, sort_keys=True)]
        lines.extend(json.dumps(AuditEntry(*r).to_dict(), sort_keys=True, ensure_ascii=False) for r in rows)
        key = f"{anchor_prefix(self._settings, self._store.chain)}{tail.sequence:020d}-{tail.hash}-{tail.hmac}.jsonl"
        retain = datetime.now(timezone.utc) + timedelta(days=self._settings.retention_days) + RETENTION_MARGIN
        try:
            self._client.put_object(
                Bucket=self._settings.bucket,
                Key=key,
                Body=("\n".join(lines) + "\n").encode("utf-8"),
                ContentType="application/x-ndjson",
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=retain,
                ChecksumAlgorithm="SHA256",
            )
        except Exception as exc:  # noqa: BLE001 - boto3 raises many types; all mean "not anchored"
            raise AnchorError(f"cannot write anchor {key}: {exc}") from exc
        logger.info("audit anchored entries {}..{} as {}", rows[0][1], tail.sequence, key)
        return AnchorHead(tail.sequence, tail.hash, tail.hmac, key)

    def start(self) -> None:
        """Anchor every ``interval_s`` on a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._loop, name="audit-anchorer", daemon=True)
        self._thread.start()

    def anchor_soon(self) -> None:
        """Anchor on the background thread now, not at the next interval (after a key rotation:
        the old epoch's tail is safe from the retired key's holder only once anchored)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread after one last anchor."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self._settings.interval_s)  # a key rotation: anchored whole, at once
            self._wake.clear()
            if not self._stop.is_set():
                self._anchor_logged(periodic=not woken)
        self._anchor_logged()
        self._store.close()

    def _anchor_logged(self, *, periodic: bool = False) -> None:
        try:
            self.anchor_now(periodic=periodic)
        except Exception as exc:  # noqa: BLE001 - the next round retries
            logger.error("audit anchoring failed: {}", exc)


def _alive_only(rows: list[tuple[Any, ...]], now: datetime) -> bool:
    """Whether ``rows`` are only ``alive`` entries, the oldest younger than :data:`ALIVE_ONLY_MAX_AGE`:
    left for the next anchor (their hash chain and HMACs still cover them meanwhile)."""
    first = AuditEntry(*rows[0])
    if any(AuditEntry(*r).actor != KILL_SWITCH_ALIVE_ACTOR for r in rows):
        return False
    return now - parse_utc_timestamp(first.timestamp) < ALIVE_ONLY_MAX_AGE
