"""Audit log figures: durable chained appends vs a plain insert loop, and `audit verify` time.

    .venv/bin/python bench/bench_audit.py            # ~1-2 minutes
    .venv/bin/python bench/bench_audit.py --quick    # ~20 s: shorter runs, verify 100,000 and extrapolate
    .venv/bin/python bench/bench_audit.py --quick --only verify   # or --only appends

Appends: AuditLog.append from 1, 8 and 64 threads (each waits for its own commit: fsync in SQLite
WAL with synchronous=FULL, COMMIT on PostgreSQL). Baseline, same run, same durability: every
thread inserts un-chained rows into a plain table, one committed transaction per row. PostgreSQL
is the server at 127.0.0.1:5432 (database ``test``, a throwaway schema); skipped if absent.

Verify: ``verify_store`` of a valid chain on each backend (100,000 entries with --quick,
1,000,000 in full), as the CLI runs it (above PARALLEL_MIN_ENTRIES: this process and forked
workers, one range each, one per CPU), and again in one process (``workers=1``). Baseline,
same run: a plain scan of the same rows (every column verify reads, through the same reader).
Wall and CPU (this process and its workers) ratios, medians of 3 alternating runs.

Targets (issue 4): chained >= 0.5 x plain; >= 10,000 appends/s with 64 writers on SQLite;
verify of 1,000,000 entries in <= 10 s. Issue 15: verify <= 1.5 x the plain scan, per entry.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import peewee  # noqa: E402

from xorj_actors.audit import (  # noqa: E402
    GENESIS_HASH,
    AuditLog,
    AuditSettings,
    PostgresSettings,
    chain_hash,
    chain_hmac,
    entry_bytes,
    open_store,
    utc_timestamp,
    verify_store,
)
from xorj_actors.audit._store import COLUMNS, iter_rows, make_model  # noqa: E402
from xorj_actors.audit._verify import PARALLEL_MIN_ENTRIES  # noqa: E402

KEY = b"bench-audit-hmac-key-0123456789abcdef-0123456789"
THREADS = (1, 8, 64)
DETAILS = {"vault": "V1", "input_mint": "USDC", "output_mint": "JUP", "amount": "125.000000", "slippage_bps": 50}


def run_threads(threads: int, seconds: float, op: Callable[[int], None], setup: Callable[[], None] = lambda: None,
                teardown: Callable[[], None] = lambda: None) -> float:
    """Operations per second of ``op`` called in a loop by ``threads`` threads for ``seconds``."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def worker(n: int) -> None:
        setup()
        start.wait()
        i = 0
        while not stop.is_set():
            op(i)
            i += 1
        counts[n] = i
        teardown()

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - t0)


def plain_rate(settings: AuditSettings, data_dir: Path, threads: int, seconds: float) -> float:
    """The baseline: un-chained rows, one committed transaction each, same store settings."""
    store = open_store(settings, data_dir)
    schema = settings.postgres.schema if settings.backend == "postgres" else None

    class Plain(make_model(store.db, schema)):  # type: ignore[misc, valid-type]
        class Meta:
            table_name = f"plain_inserts_{threads}"

    store.db.create_tables([Plain], safe=True)
    store.close()
    seq = iter(range(1, 1 << 62))
    lock = threading.Lock()
    ts = utc_timestamp()

    def insert(i: int) -> None:
        with lock:
            n = next(seq)
        row = (str(uuid.uuid4()), n, ts, "TRADE_INTENT", "INFO", "bench", None, '{"i":1}', GENESIS_HASH,
               GENESIS_HASH, GENESIS_HASH)
        while True:
            try:
                with store.db.atomic():
                    Plain.insert(dict(zip(COLUMNS, row))).execute()
                return
            except peewee.OperationalError:  # SQLite "database is locked" under 64 writers: retry
                continue

    return run_threads(threads, seconds, insert, lambda: store.db.connect(reuse_if_open=True), store.close)


def chained_rate(settings: AuditSettings, data_dir: Path, threads: int, seconds: float) -> float:
    os.environ["XORJ_AUDIT_HMAC_KEY"] = KEY.decode()
    log = AuditLog.open(settings, data_dir, "production")
    try:
        return run_threads(
            threads, seconds, lambda i: log.append("TRADE_INTENT", actor="bench", correlation_id="t", details=DETAILS)
        )
    finally:
        log.close()


def bench_appends(name: str, settings: AuditSettings, data_dir: Path, seconds: float) -> None:
    print(f"\n[{name}] durable appends/s (chained AuditLog.append vs plain one-row-per-commit insert loop)")
    for threads in THREADS:
        plain = plain_rate(settings, data_dir, threads, seconds)
        chained = chained_rate(settings, data_dir, threads, seconds)
        ratio = chained / plain
        target = "target >= 0.5x plain" + (", >= 10,000/s" if name == "sqlite" and threads == 64 else "")
        ok = ratio >= 0.5 and not (name == "sqlite" and threads == 64 and chained < 10_000)
        print(f"  {threads:>2} writers: chained {chained:>8,.0f}/s  plain {plain:>8,.0f}/s  "
              f"ratio {ratio:5.2f}x  ({target}: {'met' if ok else 'MISSED'})")


def chain_rows(n: int) -> Iterator[tuple]:
    """``n`` valid entries of one chain from the genesis, as raw rows (:data:`COLUMNS` order)."""
    prev = GENESIS_HASH
    ts = utc_timestamp()
    details = '{"amount":"125.000000","input_mint":"USDC","output_mint":"JUP","slippage_bps":50,"vault":"V1"}'
    for seq in range(1, n + 1):
        eid = str(uuid.UUID(int=seq, version=4))
        h = chain_hash(prev, entry_bytes(eid, seq, ts, "TRADE_INTENT", "INFO", "bench", "t", details))
        yield eid, seq, ts, "TRADE_INTENT", "INFO", "bench", "t", details, prev, h, chain_hmac(KEY, h)
        prev = h


def build_chain(settings: AuditSettings, data_dir: Path, n: int) -> None:
    """Write ``n`` valid entries straight into a fresh store (not timed, not durable)."""
    open_store(settings, data_dir).close()
    rows = chain_rows(n)
    cols = ", ".join(COLUMNS)
    if settings.backend == "sqlite":
        conn = sqlite3.connect(data_dir / settings.sqlite_path)
        conn.execute("PRAGMA synchronous=OFF")
        insert = f"INSERT INTO audit_entries ({cols}) VALUES ({', '.join('?' * len(COLUMNS))})"
        while batch := list(itertools.islice(rows, 50_000)):
            conn.executemany(insert, batch)
        conn.commit()
        conn.close()
        return
    import psycopg2
    import psycopg2.extras

    conn = psycopg2.connect(host="127.0.0.1", port=5432, dbname="test", user="postgres")
    with conn, conn.cursor() as cur:
        insert = f'INSERT INTO "{settings.postgres.schema}".audit_entries ({cols}) VALUES %s'
        while batch := list(itertools.islice(rows, 10_000)):
            psycopg2.extras.execute_values(cur, insert, batch, page_size=10_000)
        cur.execute(f'ANALYZE "{settings.postgres.schema}".audit_entries')
    conn.close()


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (parallel verify's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall s, CPU s, result) of one call."""
    t0, c0 = time.perf_counter(), _cpu_s()
    result = fn()
    return time.perf_counter() - t0, _cpu_s() - c0, result


def bench_verify(name: str, settings: AuditSettings, data_dir: Path, n: int, target_n: int, repeats: int) -> None:
    """``verify_store`` against a plain scan of the same rows: every column verify reads, by the
    same keyset-paginated reader, nothing computed. One untimed scan first warms the page cache,
    then scan and verify alternate ``repeats`` times; the medians are reported.
    """
    t0 = time.perf_counter()
    build_chain(settings, data_dir, n)
    print(f"\n[verify {name}] {n:,} entries generated in {time.perf_counter() - t0:.1f} s (not timed); "
          f"median of {repeats} alternating runs, load average {os.getloadavg()[0]:.1f}")
    store = open_store(settings, data_dir, create=False)
    scans, verifies, singles = [], [], []
    try:
        sum(1 for _ in iter_rows(store))
        for _ in range(repeats):
            scans.append(_timed(lambda: sum(1 for _ in iter_rows(store))))
            verifies.append(_timed(lambda: verify_store(store, KEY)))
            singles.append(_timed(lambda: verify_store(store, KEY, workers=1)))
    finally:
        store.close()
    for (_, _, scanned), (_, _, result), (_, _, single) in zip(scans, verifies, singles):
        assert result.ok and single.ok and result.entries == single.entries == n == scanned, result.describe()
    scan, scan_cpu = (statistics.median(x[i] for x in scans) for i in (0, 1))
    took, took_cpu = (statistics.median(x[i] for x in verifies) for i in (0, 1))
    one, one_cpu = (statistics.median(x[i] for x in singles) for i in (0, 1))
    workers = min(len(os.sched_getaffinity(0)), 4) if n >= PARALLEL_MIN_ENTRIES and threading.active_count() == 1 else 1
    projected = took * target_n / n
    note = "" if n == target_n else f" (extrapolated from {n:,})"
    print(f"  verify {n:,} ({workers} process{'es' if workers > 1 else ''}): {took:.2f} s  (plain scan of the same "
          f"rows {scan:.2f} s, ratio {took / scan:.2f}x; target <= 1.5x: {'met' if took / scan <= 1.5 else 'MISSED'})")
    print(f"  CPU: verify {took_cpu:.2f} s, plain scan {scan_cpu:.2f} s, ratio {took_cpu / scan_cpu:.2f}x")
    print(f"  one process: verify {one:.2f} s, ratio {one / scan:.2f}x; CPU {one_cpu:.2f} s, ratio "
          f"{one_cpu / scan_cpu:.2f}x")
    print(f"  verify {target_n:,}: {projected:.2f} s{note}  (target <= 10 s: {'met' if projected <= 10 else 'MISSED'})")


def postgres_settings() -> AuditSettings | None:
    import psycopg2

    schema = f"audit_bench_{uuid.uuid4().hex[:10]}"
    try:
        psycopg2.connect(host="127.0.0.1", port=5432, dbname="test", user="postgres", connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        print(f"\n[postgres] skipped: {exc}".rstrip())
        return None
    pg = PostgresSettings(host="127.0.0.1", port=5432, database="test", user="postgres", schema=schema)
    return AuditSettings(backend="postgres", postgres=pg)


def drop_schema(settings: AuditSettings) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, dbname="test", user="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{settings.postgres.schema}" CASCADE')
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~20 s: 1 s runs, verify 100,000 and extrapolate")
    parser.add_argument("--only", choices=("appends", "verify"), help="run only this part")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 3.0
    verify_n = 100_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        data_dir = Path(tmp)
        if args.only != "verify":
            bench_appends("sqlite", AuditSettings(), data_dir, seconds)
            pg = postgres_settings()
            if pg is not None:
                try:
                    bench_appends("postgres", pg, data_dir, seconds)
                finally:
                    drop_schema(pg)
        if args.only != "appends":
            bench_verify("sqlite", AuditSettings(sqlite_path="verify.db"), data_dir, verify_n, 1_000_000, 3)
            pg = postgres_settings()
            if pg is not None:
                try:
                    bench_verify("postgres", pg, data_dir, verify_n, 1_000_000, 3)
                finally:
                    drop_schema(pg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
