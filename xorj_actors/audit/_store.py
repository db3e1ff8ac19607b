"""The peewee model and the two databases behind it (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import peewee

from xorj_actors.audit._chain import AuditEntry, EventType, genesis_hash
from xorj_actors.audit.settings import DEFAULT_CHAIN, AuditSettings, chain_name_problem
from xorj_actors.secrets import current_environ

#: The default chain's table (the one table of a store written by one process, as ever).
TABLE = "audit_entries"
#: Every chain's table: ``audit_entries`` (default) or ``audit_entries_<chain>``.
_CHAIN_TABLE = re.compile(r"audit_entries(?:_([a-z0-9][a-z0-9-]{0,31}))?")
#: Column order of raw row tuples, the order of :class:`AuditEntry`'s fields.
COLUMNS = (
    "id",
    "sequence",
    "timestamp",
    "event_type",
    "severity",
    "actor",
    "correlation_id",
    "details",
    "prev_hash",
    "hash",
    "hmac",
)


class AuditStoreError(RuntimeError):
    """The audit store cannot be opened or read."""


#: The SQLite files' mode, whoever created them: the audit trail is the engine user's alone.
SQLITE_FILE_MODE = 0o600


def _private_sqlite(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use 0644 less the umask), and
    set 0600 on it and on its ``-wal`` / ``-shm`` files if they exist (SQLite gives new ones
    the database's mode).

    An existing database is never opened here, only chmod-ed: closing any descriptor of a file
    drops every POSIX lock this process holds on it, the SQLite connections' included (another
    process could then checkpoint and delete the WAL under a live writer).
    """
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE))
    except FileExistsError:
        pass
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if p.stat().st_mode & 0o777 != SQLITE_FILE_MODE:
                os.chmod(p, SQLITE_FILE_MODE)
        except FileNotFoundError:
            continue


@dataclass(frozen=True, slots=True)
class Store:
    """An opened database with its model class bound to it."""

    db: peewee.Database
    model: type[peewee.Model]
    #: The database, without secrets, for messages.
    database: str
    #: What it was opened from, so another process can open it again (parallel verify).
    settings: AuditSettings
    data_dir: Path
    #: The chain this store object reads and writes (``settings.chain_name``), and its table.
    chain: str = DEFAULT_CHAIN
    table: str = TABLE

    @property
    def where(self) -> str:
        """The database and the chain (unless it is the default one), for messages."""
        return self.database + _chain_suffix(self.chain)

    @property
    def genesis(self) -> str:
        """The ``prev_hash`` of this chain's first entry."""
        return genesis_hash(self.chain)

    def close(self) -> None:
        """Close this thread's connection."""
        if not self.db.is_closed():
            self.db.close()


def chain_table(chain: str) -> str:
    """The table of ``chain`` (raises ValueError for a name that is not a chain's)."""
    problem = chain_name_problem(chain)
    if problem is not None:
        raise ValueError(f"chain: {problem}")
    return TABLE if chain == DEFAULT_CHAIN else f"{TABLE}_{chain}"


def make_model(db: peewee.Database, schema: str | None, table: str = TABLE) -> type[peewee.Model]:
    """A fresh model class bound to ``db`` (one per store, so stores never share state)."""

    class Entry(peewee.Model):
        # The sequence is the primary key: gapless, starting at 1, in chain order. Few indexes:
        # every index costs pages per group commit; timestamps follow the sequence anyway.
        sequence = peewee.BigIntegerField(primary_key=True)
        id = peewee.CharField(max_length=36, unique=True)
        timestamp = peewee.CharField(max_length=27)
        event_type = peewee.CharField(max_length=32)
        severity = peewee.CharField(max_length=16)
        actor = peewee.TextField()
        correlation_id = peewee.TextField(null=True, index=True)
        details = peewee.TextField()
        prev_hash = peewee.CharField(max_length=64)
        hash = peewee.CharField(max_length=64)
        hmac = peewee.CharField(max_length=64)

        class Meta:
            database = db
            table_name = table
            # The default table's indexes are named after the class (``entry_id``), as they
            # always were; another chain's after its table, or they would be the same indexes.
            legacy_table_names = table == TABLE

    Entry._meta.schema = schema
    return Entry


def open_store(settings: AuditSettings, data_dir: Path, *, create: bool = True, need_chain: bool = True) -> Store:
    """Open the configured store at chain ``settings.chain_name``; with ``create`` make its table
    (and schema) if missing. Without ``create`` a missing table is an :class:`AuditStoreError`,
    unless ``need_chain`` is False and the store holds other chains (``audit verify``, ``audit
    chains``).

    SQLite runs in WAL mode with ``synchronous=FULL``: a commit that returned has been fsynced.
    """
    chain = settings.chain_name
    try:
        table = chain_table(chain)
    except ValueError as exc:
        raise AuditStoreError(f"audit {exc}") from None
    if settings.backend == "sqlite":
        path = Path(data_dir) / settings.sqlite_path
        if not create and not path.exists():
            raise AuditStoreError(f"no audit database at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if create:
            try:
                _private_sqlite(path)
            except OSError as exc:
                raise AuditStoreError(f"cannot make the audit database {path} private: {exc.strerror}") from None
        db: peewee.Database = peewee.SqliteDatabase(
            str(path),
            timeout=settings.sqlite_busy_timeout_s,
            pragmas={"journal_mode": "wal", "synchronous": "full", "foreign_keys": 1},
        )
        schema = None
        where = f"sqlite:{path}"
    else:
        pg = settings.postgres
        db = peewee.PostgresqlDatabase(
            pg.database,
            host=pg.host,
            port=pg.port,
            user=pg.user,
            password=current_environ().get(pg.password_env) or None,  # [secrets]: env, file or AWS
            sslmode=pg.sslmode,
            connect_timeout=pg.connect_timeout_s,
            application_name=pg.application_name,
            options=f"-c statement_timeout={int(pg.statement_timeout_s * 1000)}",
        )
        schema = pg.schema
        where = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database} schema {pg.schema}"
    store = Store(db, make_model(db, schema, table), where, settings, Path(data_dir), chain, table)
    try:
        db.connect(reuse_if_open=True)
        if create:
            with db.atomic():
                if isinstance(db, peewee.PostgresqlDatabase):
                    # PostgreSQL's IF NOT EXISTS is not safe against a concurrent twin (two
                    # openers of one chain at start: a unique violation in pg_class): one at a time.
                    db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                    # A log written by an older version gets its new indexes here: a one-off
                    # build over the whole table, far longer than [audit.postgres]
                    # statement_timeout_s allows an append (a cancelled build would leave the
                    # writer unable to open at every retry).
                    db.execute_sql(f"SET LOCAL statement_timeout = {_DDL_TIMEOUT_MS}")
                if schema is not None:
                    db.execute_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                db.create_tables([store.model], safe=True)
                _create_kill_switch_index(store)
        elif not db.table_exists(table, schema=schema):
            if need_chain or not list_chains(store):
                store.close()
                raise AuditStoreError(f"no audit table in {store.where}")
    except peewee.DatabaseError as exc:
        store.close()
        raise AuditStoreError(f"cannot open audit store {store.where}: {exc}") from exc
    return store


#: The advisory lock that serialises the audit tables' creation (any constant shared by every engine).
_DDL_LOCK = 0x786F726A_61756469
#: The time the tables' and indexes' creation may take on PostgreSQL (an index built on an old log).
_DDL_TIMEOUT_MS = 30 * 60 * 1000


def _chain_suffix(chain: str) -> str:
    return "" if chain == DEFAULT_CHAIN else f" chain {chain}"


def list_chains(store: Store) -> list[str]:
    """Every chain with a table in ``store``'s database: ``default`` first, then by name."""
    schema = store.model._meta.schema
    names = []
    for table in store.db.get_tables(schema=schema):
        m = _CHAIN_TABLE.fullmatch(table)
        if m is not None and (m[1] is None or chain_name_problem(m[1]) is None):
            names.append(m[1] or DEFAULT_CHAIN)
    return sorted(names, key=lambda n: (n != DEFAULT_CHAIN, n))


def chain_store(store: Store, chain: str) -> Store:
    """``store``'s database at another chain (same connection; nothing is created).

    Raises:
        ValueError: ``chain`` is not a valid chain name.
    """
    table = chain_table(chain)
    settings = dataclasses.replace(store.settings, chain=chain)
    model = make_model(store.db, store.model._meta.schema, table)
    return Store(store.db, model, store.database, settings, store.data_dir, chain, table)


#: The ``actor`` of the kill switch's entries, which it reads back at every start.
KILL_SWITCH_ACTOR = "kill_switch"
#: The ``actor`` of its ``alive`` entries (every ``alive_every_s``): apart, so the start-up read of
#: its history stays small; the start reads only the last one (``_halt_history``).
KILL_SWITCH_ALIVE_ACTOR = "kill_switch_alive"


def _create_kill_switch_index(store: Store) -> None:
    """Partial indexes of the kill switch's entries and of its ``alive`` entries: its start-up
    reads never scan the log (the last ``alive`` entry is one step down the second).

    Partial, so the trades' entries cost the group commit nothing but the predicates' tests.
    """
    for actor, suffix in ((KILL_SWITCH_ACTOR, "kill_switch"), (KILL_SWITCH_ALIVE_ACTOR, "kill_switch_alive")):
        store.db.execute_sql(
            f'CREATE INDEX IF NOT EXISTS "{store.table}_{suffix}" ON {qualified_table(store)} ("sequence")'
            f" WHERE \"actor\" = '{actor}'"
        )
    # And of the key rotations, which every reader of the log reads for the epochs' bounds.
    store.db.execute_sql(
        f'CREATE INDEX IF NOT EXISTS "{store.table}_key_rotation" ON {qualified_table(store)} ("sequence")'
        f" WHERE \"event_type\" = '{EventType.KEY_ROTATION.value}'"
    )


def qualified_table(store: Store, chain: str | None = None) -> str:
    """The quoted table name for raw SQL: ``store``'s, or ``chain``'s in the same database (what
    ``qualified_table(chain_store(store, chain))`` gives, without building a model class: a
    per-trade read names every chain)."""
    schema = store.model._meta.schema
    table = store.table if chain is None else chain_table(chain)
    return f'"{schema}"."{table}"' if schema else f'"{table}"'


@functools.lru_cache(maxsize=256)
def _insert_sql(table: str, param: str, rows: int) -> str:
    one = "(" + ", ".join([param] * len(COLUMNS)) + ")"
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    return f"INSERT INTO {table} ({cols}) VALUES " + ", ".join([one] * rows)


def insert_entries(store: Store, entries: Sequence[AuditEntry]) -> None:
    """Insert ``entries`` with ONE multi-row INSERT: in peewee's autocommit mode that is one
    transaction (all or nothing, one fsync/COMMIT). The same SQL on both backends.
    """
    sql = _insert_sql(qualified_table(store), store.db.param, len(entries))
    store.db.execute_sql(sql, [v for e in entries for v in e.row()])


def read_head(store: Store) -> AuditEntry | None:
    """The last entry, or ``None`` for an empty log."""
    rows = list(iter_rows(store, after=None, limit=1, descending=True))
    return AuditEntry(*rows[0]) if rows else None


def iter_rows(
    store: Store,
    *,
    after: int | None = 0,
    until: int | None = None,
    batch: int = 50_000,
    limit: int | None = None,
    descending: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[tuple]:
    """Raw row tuples (:data:`COLUMNS` order) by sequence in ``(after, until]``, fetched in
    keyset-paginated batches; ``on_batch(n)`` is called once the ``n`` rows of a batch have been
    consumed (progress, without a cost per row).

    Tuples, not model instances: verify walks a million rows and object construction dominates.
    """
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    table = qualified_table(store)
    param = store.db.param
    order = "DESC" if descending else "ASC"
    cmp = "<" if descending else ">"
    cursor_seq = after
    remaining = limit
    while remaining is None or remaining > 0:
        size = batch if remaining is None else min(batch, remaining)
        conditions, params = [], []
        if cursor_seq is not None:
            conditions.append(f'"sequence" {cmp} {param}')
            params.append(cursor_seq)
        if until is not None:
            conditions.append(f'"sequence" <= {param}')
            params.append(until)
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        sql = f'SELECT {cols} FROM {table} {where}ORDER BY "sequence" {order} LIMIT {int(size)}'
        rows = store.db.execute_sql(sql, params).fetchall()
        yield from rows
        if on_batch is not None:
            on_batch(len(rows))
        if len(rows) < size:
            return
        cursor_seq = rows[-1][1]
        if remaining is not None:
            remaining -= len(rows)


def select_entries(
    store: Store,
    *,
    correlation_id: str | None = None,
    event_types: tuple[str, ...] = (),
    since: str | None = None,
    until: str | None = None,
    sequence: int | None = None,
    entry_id: str | None = None,
    last: int | None = None,
) -> Iterator[AuditEntry]:
    """Entries matching every given filter, by sequence; ``last`` keeps only the newest N.

    ``since``/``until`` are timestamps in the log's own format (inclusive, exclusive).
    """
    m = store.model
    query = m.select(*(getattr(m, c) for c in COLUMNS))
    conditions = []
    if correlation_id is not None:
        conditions.append(m.correlation_id == correlation_id)
    if event_types:
        conditions.append(m.event_type.in_(list(event_types)))
    if since is not None:
        conditions.append(m.timestamp >= since)
    if until is not None:
        conditions.append(m.timestamp < until)
    if sequence is not None:
        conditions.append(m.sequence == sequence)
    if entry_id is not None:
        conditions.append(m.id == entry_id)
    if conditions:
        query = query.where(*conditions)
    if last is not None:
        rows = list(query.order_by(m.sequence.desc()).limit(last).tuples())
        yield from (AuditEntry(*r) for r in reversed(rows))
        return
    for row in query.order_by(m.sequence).tuples().iterator():
        yield AuditEntry(*row)
