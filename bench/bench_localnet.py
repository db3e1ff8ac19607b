"""Localnet chain benchmark: swaps/s through JSON-RPC and notification latency, beside LiteSVM.

Run: ``.venv/bin/python bench/bench_localnet.py [--quick]``.

The localnet runs as its own process (the ``xorj-actors localnet`` code) so the load generator
does not share its interpreter; ``--clients`` concurrent keep-alive HTTP clients send pre-signed
two-leg swaps with ``sendTransaction``. The baseline is LiteSVM called directly in this process
on the same kind of pre-signed swaps. Phases are interleaved in rounds so that both see the same
background load. Signing is never timed.

Target (issue 3): the server sustains at least half the direct LiteSVM swap rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websockets
from solders.hash import Hash
from solders.litesvm import LiteSVM
from solders.transaction import VersionedTransaction

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xorj_actors.localnet import (  # noqa: E402
    Genesis,
    LocalnetSettings,
    apply_genesis,
    build_genesis,
    dev_vault_authority,
    swap_transaction,
)

VAULTS = 16
TARGET_RATIO = 0.5
#: Upper bound on swaps one phase of one round can use (more than any 2-core run sustains).
MAX_RATE = 5_000
_HTTP_HEAD = b"POST / HTTP/1.1\r\nHost: localnet\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


@dataclass
class Tally:
    """Swaps done and seconds spent by one phase, over every round."""

    done: int = 0
    seconds: float = 0.0
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


class Swaps:
    """Distinct pre-signed swaps, spread over the vaults: each one new to the chain."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.keys = [dev_vault_authority(i) for i in range(VAULTS)]  # each vault signs with its own key
        self.next = 0

    def make(self, blockhash: Hash, count: int) -> list[VersionedTransaction]:
        first, self.next = self.next, self.next + count
        return [
            swap_transaction(
                self.genesis,
                self.genesis.vaults[i % VAULTS],
                self.keys[i % VAULTS],
                blockhash,
                sell="USDC",
                buy="JUP",
                amount_in=1 + i // VAULTS,
                amount_out=1,
            )
            for i in range(first, first + count)
        ]


def enough(tally: Tally, seconds: float) -> int:
    """Swaps to sign for one phase: what the rate so far needs, with room (signing is slow)."""
    rate = min(tally.rate * 1.5, MAX_RATE) if tally.done else MAX_RATE
    return int(rate * seconds) + 100


def direct_phase(svm: LiteSVM, txs: list[VersionedTransaction], seconds: float, tally: Tally) -> None:
    start = time.perf_counter()
    for tx in txs:
        result = svm.send_transaction(tx)
        tally.errors += type(result).__name__ != "TransactionMetadata"
        tally.done += 1
        if time.perf_counter() - start >= seconds:
            break
    tally.seconds += time.perf_counter() - start


def rpc(url: str, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())["result"]


def latest_blockhash(url: str) -> Hash:
    return Hash.from_string(rpc(url, "getLatestBlockhash", [{"commitment": "processed"}])["value"]["blockhash"])


def http_requests(txs: list[VersionedTransaction], preflight: bool) -> list[bytes]:
    """Raw HTTP/1.1 ``sendTransaction`` requests, ready to write."""
    options = {"encoding": "base64", "skipPreflight": not preflight, "preflightCommitment": "processed"}
    out = []
    for i, tx in enumerate(txs):
        params = [base64.b64encode(bytes(tx)).decode(), options]
        body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "sendTransaction", "params": params}).encode()
        out.append(_HTTP_HEAD % len(body) + body)
    return out


async def server_phase(url: str, requests: list[bytes], seconds: float, clients: int, tally: Tally) -> None:
    """``clients`` keep-alive connections send ``requests`` until they run out or time is up.

    Plain HTTP/1.1 over asyncio streams: a heavier client library would measure itself on a
    2-core machine instead of the server.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    queue = iter(requests)

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for request in queue:
                if time.perf_counter() >= deadline:
                    break
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                tally.errors += b'"error"' in body or not head.startswith(b"HTTP/1.1 200")
                tally.done += 1
        finally:
            writer.close()

    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(client() for _ in range(clients)))
    tally.seconds += time.perf_counter() - start


async def notification_latency(urls: dict[str, str], txs: list[VersionedTransaction]) -> list[float]:
    """Seconds from sending each swap to its ``processed`` signatureNotification."""
    latencies = []
    host, port = urls["rpc"].removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    async with websockets.connect(urls["ws"]) as ws:
        for request, tx in zip(http_requests(txs, preflight=False), txs):
            params = [str(tx.signatures[0]), {"commitment": "processed"}]
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "signatureSubscribe", "params": params}))
            assert "result" in json.loads(await ws.recv())
            start = time.perf_counter()
            writer.write(request)
            note = json.loads(await asyncio.wait_for(ws.recv(), 5))
            latencies.append(time.perf_counter() - start)
            assert note["params"]["result"]["value"] == {"err": None}, note
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]))
    writer.close()
    return latencies


def start_server(tmp: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    config = tmp / "bench.toml"
    config.write_text(f"[localnet]\nvaults = {VAULTS}\nmanual_clock = true\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "xorj_actors.cli", "localnet", "--config", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~20 s run")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients (default 32)")
    args = parser.parse_args()
    rounds, phase_s, samples = (3, 1.0, 100) if args.quick else (10, 2.5, 500)
    genesis = build_genesis(LocalnetSettings(vaults=VAULTS))
    svm = LiteSVM()
    apply_genesis(svm, genesis)
    direct, skip, preflight = Tally(), Tally(), Tally()
    with tempfile.TemporaryDirectory() as tmp:
        proc, urls = start_server(Path(tmp))
        try:
            swaps = Swaps(genesis)
            for _ in range(rounds):
                direct_phase(svm, swaps.make(svm.latest_blockhash(), enough(direct, phase_s)), phase_s, direct)
                blockhash = latest_blockhash(urls["rpc"])
                for tally, pre in ((skip, False), (preflight, True)):
                    requests = http_requests(swaps.make(blockhash, enough(tally, phase_s)), pre)
                    asyncio.run(server_phase(urls["rpc"], requests, phase_s, args.clients, tally))
            latencies = asyncio.run(notification_latency(urls, swaps.make(latest_blockhash(urls["rpc"]), samples)))
        finally:
            proc.terminate()
            proc.wait(10)

    ratio = skip.rate / direct.rate
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"swaps/s, {rounds} interleaved rounds of {phase_s:g} s per phase, {args.clients} HTTP clients")
    print(f"  LiteSVM called directly (baseline)   {direct.rate:8.0f}")
    print(f"  JSON-RPC sendTransaction, no preflight {skip.rate:6.0f}   ratio {ratio:.2f}   target >= {TARGET_RATIO}")
    print(f"  JSON-RPC sendTransaction, preflight  {preflight.rate:8.0f}   ratio {preflight.rate / direct.rate:.2f}"
          "   (verifies, simulates, then executes)")
    print(f"send -> processed signatureNotification over {samples} swaps: median "
          f"{statistics.median(latencies) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms "
          f"(baseline: one direct LiteSVM swap {1e3 / direct.rate:.2f} ms)")
    errors = direct.errors + skip.errors + preflight.errors
    if errors:
        print(f"ERRORS: {errors} swaps failed")
    print("target met" if ratio >= TARGET_RATIO else "TARGET MISSED")
    return 1 if errors else 0  # a missed target is a figure, not an error


if __name__ == "__main__":
    sys.exit(main())
