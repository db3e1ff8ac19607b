"""Every live key of a KV bucket, read completely (``ClusterStore.entries``).

nats-py's own listings (``KeyValue.keys()``, ``history()``, a ``watch()`` read to its first
``None``) can come back short, and did here (``ctl cluster`` showing too few nodes):

- The watch delivers the last message per subject, and on nats-server 2.9 a message of that
  initial phase may report ``num_pending == 0`` while keys rewritten since the consumer was
  made are still to come (a bucket of three keys rewritten every heartbeat listed short in two
  reads out of three); nats-py ends the listing at the first such message.
- Before reading anything, nats-py compares the server's ``num_pending`` (0 once the server has
  pushed every message) with the messages *it has processed* (0 while they are in flight) and
  ends the listing at once, empty (nats-io/nats.py#842; #995 is the open fix).

So a listing here reads through a consumer of its own that delivers every message of the stream
(the buckets keep one revision per key, so that is the latest value of each key, or its delete
marker), and ends only when either

- a message reports ``num_pending == 0``: when the server sent it, no message matching the
  listing was stored after it, so every key live then has been delivered (messages come in
  stream order, and a key's latest message cannot be skipped while it exists); or
- the consumer, asked, has nothing pending and has delivered no message this listing has not
  read (an empty bucket; or the pending message expired before it was sent, as leases do).
"""

from __future__ import annotations

import time

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

__all__ = ["list_entries"]

#: How long the listing waits for a message before it asks the consumer whether it is done.
_IDLE_S = 0.05
#: A listing that has not caught up with the bucket this long (timeouts of one request) gives up:
#: keys rewritten faster than they are read would keep it going for ever. 10,000 leases list in
#: about 3 s on a loaded 2-core machine.
_AT_MOST_TIMEOUTS = 10
_AT_MOST_S = 10.0


async def list_entries(js: JetStreamContext, bucket: str, pattern: str, timeout_s: float) -> list[KeyValue.Entry]:
    """Every live entry of ``bucket`` whose key matches ``pattern``, by key.

    Raises nats' TimeoutError when no message came and the consumer was not done for
    ``timeout_s``, or when the listing has not caught up with the bucket after
    ``max(10 s, 10 timeout_s)`` (the store turns it into ClusterUnavailable).
    """
    prefix = f"$KV.{bucket}."
    sub = await js.subscribe(
        prefix + pattern, stream=f"KV_{bucket}", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL,
        inactive_threshold=max(5.0, 10 * timeout_s),
    )
    try:
        return await _read(sub, bucket, prefix, timeout_s)
    finally:
        await sub.unsubscribe()


async def _read(sub: JetStreamContext.PushSubscription, bucket: str, prefix: str, timeout_s: float) -> list[KeyValue.Entry]:
    found: dict[str, KeyValue.Entry] = {}
    last_read = 0  # the consumer sequence of the last message read
    progress = time.monotonic()
    give_up = progress + max(_AT_MOST_S, _AT_MOST_TIMEOUTS * timeout_s)
    if await _done(sub, last_read):
        return []
    while True:
        try:
            msg = await sub.next_msg(timeout=_IDLE_S)
        except nats.errors.TimeoutError:
            if await _done(sub, last_read):
                break
            if time.monotonic() - progress > timeout_s:
                raise
            continue
        progress = time.monotonic()
        if progress > give_up:
            raise nats.errors.TimeoutError
        meta = msg.metadata
        key = msg.subject[len(prefix):]
        if msg.headers and msg.headers.get(KV_OP) in (KV_DEL, KV_PURGE):
            found.pop(key, None)  # deleted since an earlier message of it was read
        else:
            found[key] = KeyValue.Entry(
                bucket=bucket, key=key, value=msg.data, revision=meta.sequence.stream, delta=meta.num_pending,
                created=None, operation=None,
            )
        last_read = meta.sequence.consumer
        if meta.num_pending == 0:
            break
    return [found[k] for k in sorted(found)]


async def _done(sub: JetStreamContext.PushSubscription, last_read: int) -> bool:
    """Whether the consumer has nothing pending and has delivered nothing unread."""
    info = await sub.consumer_info()
    return info.num_pending == 0 and info.delivered.consumer_seq == last_read
