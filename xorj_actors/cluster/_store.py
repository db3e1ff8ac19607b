"""The NATS connection and the cluster's KV buckets, with NATS failures made one error.

Every operation goes through :meth:`ClusterStore.run`: a server that does not answer becomes
:class:`ClusterUnavailable`, and every answer (a refusal included) counts as contact, which the
engine's "NATS lost" rule reads from :attr:`ClusterStore.last_contact`.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
import nats.js.errors
from loguru import logger
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from xorj_actors.cluster._errors import ClusterError, ClusterUnavailable
from xorj_actors.cluster._listing import list_entries
from xorj_actors.cluster.settings import ClusterSettings
from xorj_actors.redaction import redact_url

__all__ = ["ClusterStore", "UNAVAILABLE"]

T = TypeVar("T")

#: What NATS raises when it cannot answer: down, unreachable, timed out, JetStream unavailable.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoServersError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    asyncio.TimeoutError,
    OSError,
)
#: The stream exists with another configuration (JSStreamNameExistErr).
_STREAM_CONFIG_DIFFERS = 10058


class ClusterStore:
    """One NATS connection and the ``members``, ``leases``, ``halt``, ``acks`` and ``config`` buckets.

    Open with :meth:`open`; the buckets are created if absent and checked if present (a leases
    bucket whose TTL is not ``lease_ttl_s`` is refused: the fence's arithmetic assumes it).
    """

    def __init__(self, settings: ClusterSettings, clock: Callable[[], float] = time.monotonic) -> None:
        """Not connected yet: use :meth:`open`."""
        self.settings = settings
        self._client = Client()
        self._buckets: dict[str, KeyValue] = {}
        self._clock = clock
        self._closing = False
        #: Monotonic time of the last operation NATS answered (None: none yet).
        self.last_contact: float | None = None

    @classmethod
    async def open(cls, settings: ClusterSettings, clock: Callable[[], float] = time.monotonic) -> ClusterStore:
        """Connect to ``settings.nats_url`` and open (creating if absent) the buckets.

        Raises ClusterUnavailable if NATS does not answer within a few request timeouts, and
        ClusterError if a bucket exists with another configuration.
        """
        store = cls(settings, clock)
        try:
            await store._connect()
            store._buckets = await _open_buckets(store._client, settings)
        except BaseException:
            await store.close()
            raise
        store.last_contact = clock()
        return store

    async def _connect(self) -> None:
        settings = self.settings
        try:
            await asyncio.wait_for(
                self._client.connect(
                    servers=[u.strip() for u in settings.nats_url.split(",") if u.strip()],
                    name=f"xorj-actors:{settings.node_id or 'cli'}",
                    connect_timeout=settings.op_timeout_s,  # type: ignore[arg-type]
                    # Once connected, reconnect for ever: the engine, not the client, decides
                    # when NATS is lost (nats_lost_halt_s), and recovers once it is back.
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=min(1.0, settings.heartbeat_s),
                    error_cb=_log_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                ),
                timeout=3 * settings.op_timeout_s + 1,
            )
        except UNAVAILABLE as exc:
            raise ClusterUnavailable(f"NATS at {redact_url(settings.nats_url)}: not reachable ({type(exc).__name__})") from exc

    async def _on_disconnected(self) -> None:
        if not self._closing:
            logger.warning("cluster: disconnected from NATS at {}", redact_url(self.settings.nats_url))

    async def _on_reconnected(self) -> None:
        logger.warning("cluster: reconnected to NATS at {}", redact_url(self.settings.nats_url))

    def bucket(self, role: str) -> KeyValue:
        """The bucket named by ``role`` (``members``, ``leases``, ``halt``, ``acks``, ``config``)."""
        return self._buckets[role]

    @property
    def connected(self) -> bool:
        return self._client.is_connected

    async def run(self, operation: Awaitable[T]) -> T:
        """Await a NATS operation: failures to answer raise ClusterUnavailable; answers are contact."""
        try:
            result = await operation
        except UNAVAILABLE as exc:
            raise ClusterUnavailable(f"NATS at {redact_url(self.settings.nats_url)}: {type(exc).__name__}: {exc}") from exc
        except nats.js.errors.APIError:
            self.last_contact = self._clock()  # the server answered, with a refusal
            raise
        self.last_contact = self._clock()
        return result

    async def get(self, role: str, key: str) -> KeyValue.Entry | None:
        """The key's current entry in a bucket; None if absent, expired or deleted."""
        try:
            entry = await self.run(self.bucket(role).get(key))
        except nats.js.errors.KeyNotFoundError:
            return None
        assert entry.revision is not None
        return entry

    async def entries(self, role: str, pattern: str = ">") -> list[KeyValue.Entry]:
        """Every live entry of a bucket whose key matches ``pattern`` (deleted ones left out), by
        key: read completely, where nats-py's own listings may stop short (see ``_listing``)."""
        js = self._client.jetstream(timeout=self.settings.op_timeout_s)
        return await self.run(list_entries(js, self.settings.buckets[role], pattern, self.settings.op_timeout_s))

    async def keys(self, role: str) -> frozenset[str]:
        """The keys of a bucket that have a message now: a live value or a delete marker (both go
        at the bucket's TTL). One request, no values: the stream's subjects, from its info."""
        bucket = self.settings.buckets[role]
        prefix = f"$KV.{bucket}."
        jsm = self._client.jsm(timeout=self.settings.op_timeout_s)
        info = await self.run(jsm.stream_info(f"KV_{bucket}", subjects_filter=prefix + ">"))
        return frozenset(s[len(prefix):] for s in (info.state.subjects or {}))

    async def created(self, role: str) -> datetime.datetime | None:
        """When the server made a bucket's stream; None if it has none now (NATS lost its store).
        A stream made again has a new time: how a lost store is told from a stale read."""
        jsm = self._client.jsm(timeout=self.settings.op_timeout_s)
        try:
            info = await self.run(jsm.stream_info(f"KV_{self.settings.buckets[role]}"))
        except nats.js.errors.NotFoundError:
            return None
        return info.created

    async def make_buckets_again(self) -> None:
        """Create the buckets a lost store no longer has (the existing ones are left as they are;
        the KeyValue handles already given out keep working: they name their streams)."""
        await _open_buckets(self._client, self.settings)

    async def close(self) -> None:
        """Close the connection (operations afterwards raise ClusterUnavailable)."""
        self._closing = True
        if not self._client.is_closed:
            await self._client.close()


async def _open_buckets(client: Client, settings: ClusterSettings) -> dict[str, KeyValue]:
    js = client.jetstream(timeout=settings.op_timeout_s)
    names = settings.buckets
    # The halt epoch and the acks never age out: a halt lasts until it is recovered; nor does the
    # cluster's configuration (the vault set).
    ttls: dict[str, float | None] = {
        "members": settings.member_ttl_s,
        "leases": settings.lease_ttl_s,
        "halt": None,
        "acks": None,
        "config": None,
    }
    buckets = {}
    for role, ttl in ttls.items():
        config = KeyValueConfig(
            bucket=names[role], history=1, ttl=ttl, storage=StorageType.FILE, replicas=settings.replicas
        )
        try:
            buckets[role] = await js.create_key_value(config)
        except UNAVAILABLE as exc:
            raise ClusterUnavailable(f"NATS at {settings.nats_url}: bucket {names[role]}: {type(exc).__name__}") from exc
        except nats.js.errors.APIError as exc:
            if exc.err_code != _STREAM_CONFIG_DIFFERS:
                raise ClusterError(f"bucket {names[role]}: cannot create: {exc.description}") from exc
            raise ClusterError(
                f"bucket {names[role]}: exists with another configuration than this node's "
                f"(ttl {ttl}, replicas {settings.replicas}): every node must run the same [cluster] timings"
            ) from exc
    return buckets


async def _log_error(exc: Exception) -> None:
    # Every failed reconnect attempt lands here: the disconnect itself is the warning.
    logger.debug("cluster: NATS client: {}: {}", type(exc).__name__, exc)

