"""The single writer: group commit, chain computed in order, fail closed while the store is down."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from loguru import logger

from xorj_actors.audit._chain import (
    AuditEntry,
    CanonicalDetails,
    EventType,
    Severity,
    canonical_json,
    chain_hash,
    chain_step,
    entry_bytes,
    hmac_template,
    utc_timestamp,
)
from xorj_actors.audit._epochs import start_key
from xorj_actors.audit._keys import (
    KEY_ROTATION,
    KeyRing,
    RotationReason,
    as_ring,
    fingerprint,
    key_problem,
    load_key_ring,
    rotation_details,
)
from xorj_actors.audit._request import Request, validated
from xorj_actors.audit._store import COLUMNS, AuditStoreError, Store, insert_entries, open_store, read_head
from xorj_actors.audit.settings import AuditSettings


class AuditUnavailable(RuntimeError):
    """The log refused an entry: closed, or too many entries already wait for the store."""


class AuditTimeout(TimeoutError):
    """The caller's own wait ran out. The entry may still be committed later (see docs/AUDIT.md)."""


class _Diverged(RuntimeError):
    """The store's head is not where this writer left it; writing would fork the chain."""


class AuditLog:
    """The hash-chained audit log's single writer, usable from any thread.

    One writer thread takes every entry queued since its last commit (up to ``max_batch``),
    chains them in queue order and commits them in one transaction. ``append`` returns only
    after the caller's own entry is committed. While the store is unavailable the writer keeps
    the queued entries in memory in order (at most ``max_pending``), calls ``on_unavailable``
    once, retries with backoff, writes them when the store returns, then calls ``on_available``.
    """

    def __init__(
        self,
        store: Store,
        key: bytes | KeyRing,
        *,
        max_batch: int = 512,
        max_wait_s: float = 0.0,
        max_pending: int = 100_000,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 2.0,
        append_timeout_s: float = 5.0,
        on_unavailable: Callable[[str], None] | None = None,
        on_available: Callable[[], None] | None = None,
        start_timeout_s: float = 30.0,
        rotate_at_start: bool = False,
    ) -> None:
        self._store = store
        #: Only the engine opens a new key epoch at its start; another writer (a CLI) refuses.
        self._rotate_at_start = rotate_at_start
        self._ring = as_ring(key)
        #: The key the writer MACs with (only the writer thread changes it, at a KEY_ROTATION
        #: entry); ``_target`` the key the last queued rotation moves to (under ``_cond``).
        self._key = self._target = self._ring.current
        #: Keys that may never open an epoch again: the retired ones, and every one this writer left.
        self._spent = set(self._ring.retired) - {self._ring.current}
        self._mac = hmac_template(self._key)
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._max_pending = max_pending
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._append_timeout_s = append_timeout_s
        self._on_unavailable = on_unavailable
        self._on_available = on_available
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Request] = deque()
        self._outstanding = 0  # queued + being written
        self._closing = False
        self._abandon = False
        self._unavailable_reason: str | None = None
        self._head_seq = 0
        self._head_hash = store.genesis
        self._committed: list[Request] = []
        started: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="audit-writer", daemon=True)
        self._thread.start()
        try:
            started.result(timeout=start_timeout_s)
        except FutureTimeout:
            self._abandon_writer()
            raise AuditStoreError(f"audit store {store.where} did not answer within {start_timeout_s} s") from None

    @classmethod
    def open(
        cls,
        settings: AuditSettings,
        data_dir: Path,
        environment: str,
        *,
        on_unavailable: Callable[[str], None] | None = None,
        on_available: Callable[[], None] | None = None,
        rotate_at_start: bool = False,
    ) -> AuditLog:
        """Open the configured store and start the writer (keys from the credential provider).
        ``rotate_at_start``: a head in an older key epoch is rotated from (the engine), else refused."""
        key = load_key_ring(settings, environment)
        store = open_store(settings, data_dir)
        store.close()  # the writer thread opens its own connection
        return cls(
            store,
            key,
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_s,
            max_pending=settings.max_pending,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
            append_timeout_s=settings.append_timeout_s,
            on_unavailable=on_unavailable,
            on_available=on_available,
            rotate_at_start=rotate_at_start,
        )

    # -- callers ---------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while the store is failing (entries are being held in memory)."""
        return self._unavailable_reason is None

    @property
    def pending(self) -> int:
        """Entries accepted but not yet committed."""
        return self._outstanding

    def submit(
        self,
        event_type: EventType | str,
        *,
        actor: str,
        details: Mapping[str, Any] | CanonicalDetails | None = None,
        correlation_id: str | None = None,
        severity: Severity | str = Severity.INFO,
    ) -> Future[AuditEntry]:
        """Queue an entry; the future resolves with the committed entry.

        Raises:
            ValueError: bad input (nothing is queued); :class:`CanonicalJSONError` for details.
            AuditUnavailable: the log is closed or ``max_pending`` entries already wait.
        """
        future: Future[AuditEntry] = Future()
        # Running from the start: a caller that gives up waiting cannot cancel it under the
        # writer (set_result on a cancelled future raises, and the writer would take that for a
        # store failure and halt trading).
        future.set_running_or_notify_cancel()
        return self._enqueue(event_type, severity, actor, correlation_id, details, future).future

    def append(
        self,
        event_type: EventType | str,
        *,
        actor: str,
        details: Mapping[str, Any] | CanonicalDetails | None = None,
        correlation_id: str | None = None,
        severity: Severity | str = Severity.INFO,
        timeout: float | None = None,
    ) -> AuditEntry:
        """Append an entry and wait until it is committed (durable) or ``timeout`` runs out.

        Raises:
            ValueError: bad input (nothing is queued); :class:`CanonicalJSONError` for details.
            AuditUnavailable: the log is closed or ``max_pending`` entries already wait.
            AuditTimeout: not committed in time; the entry stays queued and may still be written.
        """
        req = self._enqueue(event_type, severity, actor, correlation_id, details, None)
        wait = self._append_timeout_s if timeout is None else timeout
        entry = req.wait(wait)
        if entry is None:
            reason = self._unavailable_reason or "store slow"
            raise AuditTimeout(
                f"audit entry not committed within {wait} s ({reason}); it is still queued and may be written later"
            )
        return entry

    @property
    def key_fingerprint(self) -> str:
        """The fingerprint of the key new entries are MACed with (once queued rotations are written)."""
        with self._cond:
            return fingerprint(self._target)

    def submit_rotation(self, new_key: bytes, reason: str) -> Future[AuditEntry] | None:
        """Queue a key rotation: a ``KEY_ROTATION`` entry MACed under the key in use before it,
        naming ``new_key``'s fingerprint; every entry queued after it is MACed under ``new_key``.
        None: ``new_key`` is the key already in use (nothing to rotate).

        Raises:
            ValueError: ``new_key`` cannot be an audit key (a retired one included), or ``reason`` is unknown.
            AuditUnavailable: the log is closed or full.
        """
        problem = key_problem(new_key, "the new key")
        if problem is not None:
            raise ValueError(problem)
        rotation_details(new_key, new_key, reason)  # the reason's check
        future: Future[AuditEntry] = Future()
        future.set_running_or_notify_cancel()
        req = Request(KEY_ROTATION, Severity.WARNING.value, "audit", None, "{}", future)
        req.rotate_to = (new_key, reason)
        with self._cond:
            if new_key == self._target:
                return None
            if new_key in self._spent:
                raise ValueError(f"the new key (fingerprint {fingerprint(new_key)}) is a retired key, already used:"
                                 " a key opens one epoch only; choose a fresh key")
            self._push(req)
            self._spent.add(self._target)
            self._target = new_key
        return future

    def rotate(self, new_key: bytes, reason: str, timeout: float | None = None) -> AuditEntry | None:
        """:meth:`submit_rotation` and wait for its entry's commit (None: nothing to rotate).

        Raises:
            AuditTimeout: not committed within ``timeout``; the rotation stays queued.
        """
        future = self.submit_rotation(new_key, reason)
        if future is None:
            return None
        wait = self._append_timeout_s if timeout is None else timeout
        try:
            return future.result(wait)
        except FutureTimeout:
            raise AuditTimeout(f"key rotation not committed within {wait} s; it is still queued") from None

    def _push(self, req: Request) -> None:
        """Queue ``req`` (``_cond`` held)."""
        if self._closing:
            raise AuditUnavailable("audit log is closed")
        if self._outstanding >= self._max_pending:
            raise AuditUnavailable(
                f"audit log refuses the entry: {self._outstanding} entries already wait for the store"
                f" ({self._unavailable_reason or 'store slow'})"
            )
        self._queue.append(req)
        self._outstanding += 1
        self._cond.notify()

    def _enqueue(
        self,
        event_type: EventType | str,
        severity: Severity | str,
        actor: str,
        correlation_id: str | None,
        details: Mapping[str, Any] | CanonicalDetails | None,
        future: Future[AuditEntry] | None,
    ) -> Request:
        req = Request(*validated(event_type, severity, actor, correlation_id, details), future)
        with self._cond:
            self._push(req)
        return req

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting entries, write what is queued and stop the writer.

        Raises:
            AuditUnavailable: the store did not take the queued entries within ``timeout``;
                their futures fail and they are NOT written.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            lost = self._abandon_writer()
            raise AuditUnavailable(f"audit log closed with {lost} entries unwritten: {self._unavailable_reason}")

    def _abandon_writer(self) -> int:
        with self._cond:
            self._abandon = True
            self._closing = True
            lost = self._outstanding
            self._cond.notify_all()
        self._thread.join(5.0)
        return lost

    # -- writer thread ---------------------------------------------------------------------

    def _run(self, started: Future[None]) -> None:
        try:
            self._load_head()
        except Exception as exc:  # noqa: BLE001 - reported to the constructor
            started.set_exception(exc)
            self._store.close()
            return
        started.set_result(None)
        batch: list[Request] = []
        try:
            while batch := self._take_batch():
                self._chain(batch)
                self._write(batch)
        except BaseException as exc:  # noqa: BLE001 - the thread ends here either way
            # A bug, not an outage: refuse new entries and tell the kill switch, loudly.
            logger.exception("audit writer crashed; the log refuses new entries")
            with self._cond:
                self._closing = True
            self._mark_unavailable(f"audit writer crashed: {type(exc).__name__}: {exc}")
            _fail([r for r in batch if not r.resolved])
        finally:
            self._wake_committed()
            self._store.close()
            self._fail_queued()

    def _load_head(self) -> None:
        self._store.db.connect(reuse_if_open=True)
        head = read_head(self._store)
        if head is None:
            return
        canonical = entry_bytes(*(getattr(head, c) for c in COLUMNS[:8]))
        if chain_hash(head.prev_hash, canonical) != head.hash:
            raise AuditStoreError(
                f"last entry {head.sequence} in {self._store.where} does not hash to its stored hash:"
                " a tampered log; run `xorj-actors audit verify`"
            )
        try:
            epoch = start_key(self._store, self._ring, head.sequence, head.hash, head.hmac)
        except ValueError as exc:
            raise AuditStoreError(f"last entry {head.sequence} in {self._store.where} {exc}; run `xorj-actors audit verify`") from None
        self._head_seq, self._head_hash = head.sequence, head.hash
        if epoch != self._ring.current and not self._rotate_at_start:
            raise AuditStoreError(f"the audit key (fingerprint {fingerprint(self._ring.current)}) is not the key of the"
                                  f" log's open epoch ({fingerprint(epoch)}): only the engine opens a key epoch at its"
                                  " start; start the engine first, or run this with the key in use")
        if epoch != self._ring.current:
            # Restarted with a new key: the head's epoch key is a retired one. Rotate first,
            # before any caller's entry (the constructor has not returned: the queue is ours).
            self._key, self._mac = epoch, hmac_template(epoch)
            req = Request(KEY_ROTATION, Severity.WARNING.value, "audit", None, "{}", None)
            req.rotate_to = (self._ring.current, RotationReason.START_UP)
            with self._cond:
                self._push(req)
            logger.warning("audit key rotated at start-up: fingerprint {} -> {} (a KEY_ROTATION entry opens the new epoch)",
                           fingerprint(epoch), fingerprint(self._ring.current))

    def _take_batch(self) -> list[Request]:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if self._abandon:
                return []
            if self._max_wait_s and len(self._queue) < self._max_batch and not self._closing:
                self._cond.wait_for(
                    lambda: len(self._queue) >= self._max_batch or self._closing, timeout=self._max_wait_s
                )
            n = min(len(self._queue), self._max_batch)
            return [self._queue.popleft() for _ in range(n)]

    def _chain(self, batch: list[Request]) -> None:
        ts = utc_timestamp()
        seq, prev = self._head_seq, self._head_hash
        prev_raw = bytes.fromhex(prev)
        for r in batch:
            seq += 1
            if r.rotate_to is not None:
                r.details = canonical_json(rotation_details(self._key, *r.rotate_to))
            canonical = entry_bytes(
                r.entry_id, seq, ts, r.event_type, r.severity, r.actor, r.correlation_id, r.details
            )
            prev_raw, h, tag = chain_step(self._mac, prev_raw, canonical)
            r.entry = AuditEntry(
                r.entry_id, seq, ts, r.event_type, r.severity, r.actor, r.correlation_id, r.details, prev, h, tag
            )
            prev = h
            if r.rotate_to is not None:  # the entries after it are MACed under the new key
                self._key = r.rotate_to[0]
                self._mac = hmac_template(self._key)
        self._head_seq, self._head_hash = seq, prev

    def _write(self, batch: list[Request]) -> None:
        entries = [r.entry for r in batch]
        delay = self._retry_initial_s
        while True:
            try:
                if self._unavailable_reason is None or not self._already_committed(entries):
                    self._commit(entries)
                break
            except Exception as exc:  # noqa: BLE001 - any store failure fails closed
                self._wake_committed()
                self._mark_unavailable(f"{type(exc).__name__}: {exc}".strip())
                self._reset_connection()
                with self._cond:
                    abandoned = self._cond.wait_for(lambda: self._abandon, timeout=delay)
                if abandoned:
                    _fail(batch)
                    return
                delay = min(delay * 2, self._retry_max_s)
        if self._unavailable_reason is not None:
            self._mark_available()
        with self._cond:
            self._outstanding -= len(batch)
            more = bool(self._queue)
        self._committed = batch
        if not more:
            self._wake_committed()

    def _wake_committed(self) -> None:
        """Release the callers of the last committed batch.

        With more entries queued this runs just before the next batch's INSERT: the woken callers
        then use the GIL while the writer waits for the fsync, instead of starving the single
        writer of the GIL between its statements.
        """
        committed, self._committed = self._committed, []
        for r in committed:
            r.resolve(r.entry)

    def _commit(self, entries: list[AuditEntry]) -> None:
        self._store.db.connect(reuse_if_open=True)
        self._wake_committed()
        # One multi-row INSERT in autocommit mode is one transaction: one fsync/COMMIT, and the
        # fewest points at which the writer hands the GIL to its callers.
        insert_entries(self._store, entries)

    def _already_committed(self, entries: list[AuditEntry]) -> bool:
        """After a failure the last commit may have landed anyway: ask the store's head."""
        self._store.db.connect(reuse_if_open=True)
        head = read_head(self._store)
        head_seq, head_hash = (head.sequence, head.hash) if head else (0, self._store.genesis)
        first, last = entries[0], entries[-1]
        if (head_seq, head_hash) == (last.sequence, last.hash):
            return True
        if (head_seq, head_hash) == (first.sequence - 1, first.prev_hash):
            return False
        raise _Diverged(
            f"store head is entry {head_seq}, expected {first.sequence - 1}: another writer touched the log"
        )

    def _reset_connection(self) -> None:
        try:
            self._store.db.close()
        except Exception:  # noqa: BLE001 - the connection is already broken
            pass

    def _mark_unavailable(self, reason: str) -> None:
        first = self._unavailable_reason is None
        self._unavailable_reason = reason
        if first:
            logger.error("audit store {} unavailable, holding entries in memory: {}", self._store.where, reason)
            self._notify(self._on_unavailable, reason)

    def _mark_available(self) -> None:
        self._unavailable_reason = None
        logger.warning("audit store {} available again; held entries written", self._store.where)
        self._notify(self._on_available)

    @staticmethod
    def _notify(callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - a broken callback must not stop the writer
            logger.exception("audit availability callback failed")

    def _fail_queued(self) -> None:
        with self._cond:
            leftovers = list(self._queue)
            self._queue.clear()
        _fail(leftovers)


def _fail(requests: list[Request]) -> None:
    for r in requests:
        r.resolve(None, AuditUnavailable("audit log closed before the entry was written"))
