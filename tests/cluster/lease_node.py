"""A node holding leases in a process of its own, for the SIGSTOP test (tests/cluster/test_nats_ownership.py).

``python -m tests.cluster.lease_node SETTINGS_JSON VAULT...``: runs an :class:`Ownership` that
places every vault on itself and prints JSON lines on stdout: each grant *before* the fence takes
it (so the parent knows every deadline this process could sign under, even if it is stopped
right after), each activation and passivation, and every 50 ms what the fence allows now. Times
are ``time.monotonic()``, which is one clock for every process of the machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any

from xorj_actors.cluster import (
    ClusterSettings, ClusterStore, Fence, LeaseClock, LeaseGrant, Leases, NodeIdentity, Ownership, one_by_one,
)


_OUT = threading.Lock()


def say(**event: Any) -> None:
    """One line per event, whole: the hook thread and the loop both write."""
    with _OUT:
        sys.stdout.write(json.dumps({"t": time.monotonic(), **event}) + "\n")
        sys.stdout.flush()


class ReportingFence(Fence):
    def grant(self, grant: LeaseGrant) -> None:
        say(grant=grant.vault_id, revision=grant.revision, until=self.clock.usable_until(grant))
        super().grant(grant)


async def main(settings: ClusterSettings, vaults: list[str]) -> None:
    store = await ClusterStore.open(settings)
    me = NodeIdentity.new(settings.node_id)
    fence = ReportingFence(LeaseClock.from_settings(settings))

    async def alone() -> tuple[str, ...]:
        return (me.node_id,)

    own = Ownership(
        Leases(store, me), fence, me, vaults, alone,
        activate=one_by_one(lambda v, g: say(activated=v, revision=g.revision)),
        passivate=lambda v, why: say(passivated=v, why=why.value),
    )
    task = asyncio.create_task(own.run())
    while not task.done():
        say(usable=list(fence.usable()))
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(ClusterSettings(**json.loads(sys.argv[1])), sys.argv[2:]))
