"""Lease renewal figures: how long one node takes to renew N vault leases (docs/CLUSTER.md).

    .venv/bin/python bench/bench_leases.py            # N = 1,000, 3,000, 10,000; ~1 minute
    .venv/bin/python bench/bench_leases.py --quick    # N = 1,000, 3,000

A private ``nats-server -js`` (Debian 2.9.10) on a free loopback port. For each N the lease loop
(:class:`Ownership`, default ``[cluster]`` timings: TTL 10 s, renewal every 2 s, request timeout
1 s) acquires N leases, then renews every one of them in one batch (its ``renew_step``, every
request in flight at once on one nats-py connection), five times; the median and the worst batch
are printed with the renewals NATS did not answer in time. Baseline in the same run: the first
1,000 of them renewed one at a time (each request awaited before the next).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xorj_actors.cluster import ClusterSettings, ClusterStore, Fence, LeaseClock, Leases, NodeIdentity, Ownership  # noqa: E402

ROUNDS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nats(store: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = free_port()
    proc = subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"nats://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("nats-server did not start") from None
            time.sleep(0.05)


async def measure(url: str, n: int, prefix: str) -> None:
    settings = ClusterSettings(nats_url=url, node_id="a", bucket_prefix=prefix)
    settings.validate()
    store = await ClusterStore.open(settings)
    offset = [0.0]

    def now() -> float:  # the lease clock, pushed on by one renewal interval per round
        return time.monotonic() + offset[0]

    me = NodeIdentity.new("a")
    leases = Leases(store, me, clock=now)
    fence = Fence(LeaseClock.from_settings(settings), now=now)

    async def alone() -> tuple[str, ...]:
        return ("a",)

    vaults = [f"vault-{i:05d}" for i in range(n)]
    own = Ownership(leases, fence, me, vaults, alone, lambda grants: {}, lambda v, why: None, now=now)
    start = time.perf_counter()
    while len(own.owned()) < n:
        await own.place_step()
    acquired = time.perf_counter() - start
    batches = []
    for _ in range(ROUNDS):
        offset[0] += settings.renew_every_s
        await own.renew_step()
        assert own.last_renewal is not None
        batches.append(own.last_renewal)
    seconds = [b.seconds for b in batches]
    print(f"N={n:>6}: acquire all {acquired:6.2f} s | renew all in one batch: median {statistics.median(seconds):.3f} s, "
          f"worst {max(seconds):.3f} s ({n / statistics.median(seconds):,.0f}/s) | "
          f"unanswered {sum(b.unanswered for b in batches)}, lost {sum(b.lost for b in batches)}")
    if n == 1000:
        grants = [own._held[v] for v in vaults]
        start = time.perf_counter()
        for grant in grants:
            await leases.renew(grant)
        one_by_one = time.perf_counter() - start
        print(f"  baseline, the same 1,000 renewed one at a time: {one_by_one:.3f} s ({1000 / one_by_one:,.0f}/s)")
    await own.close(release=False)
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = (1000, 3000) if args.quick else (1000, 3000, 10000)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_nats(Path(tmp))
        try:
            for i, n in enumerate(sizes):
                asyncio.run(measure(url, n, f"bench{i}"))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
