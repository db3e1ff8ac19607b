"""Sharded trade path (issue 15): trades/s through K engine processes of one cluster vs one process.

    .venv/bin/python bench/bench_sharded.py              # ~2 minutes
    .venv/bin/python bench/bench_sharded.py --quick      # ~1 minute
    .venv/bin/python bench/bench_sharded.py --nodes 3 --levels 32,96
    .venv/bin/python bench/bench_sharded.py --quick --rounds 3   # the setups alternated 3 times; medians

One run, one localnet process (bench_execution's: ``--vaults`` vaults, 10 ms slots,
``confirmed_lag = 0``, the dev key), and against it, in turn:

- the baseline: raw swaps/s (bench_execution's ``raw_rate``: pre-signed swaps, sendTransaction
  skipPreflight, 32 keep-alive clients, a sample checked to have landed);
- ONE engine process (no ``[cluster]``, no vault actors: bench_execution's engine config) with a
  ``Driver`` actor keeping N trades in flight over every vault (the same closed loop);
- ONE node of a cluster (as below, K = 1): what the cluster itself costs a trade;
- K engine processes (``--nodes``, default 2) as the nodes of ONE cluster (the cluster design,
  docs/CLUSTER.md): a private ``nats-server -js`` on a free port, ``[cluster]`` with
  config/cluster.toml's timings, ``[vaults] count`` = every vault (rounds a day apart, so
  the vault actors do not trade on their own), each node its own data directory and SQLite
  audit store. The nodes share the vaults by lease: each holds the ones placement gives it
  (``xorj_actors.cluster.assign``), read from the node's lease loop (``Engine.ownership.owned()``,
  the vaults whose actors ``LeasedVaults`` started). Each node runs its own Driver over only the
  vaults it holds, with N / K trades in flight, all nodes at once.

Every engine runs in a child process of this file (``--child``), told each phase on stdin; it
answers its trades/s (confirmed outcomes after a ramp), latency, and its own CPU per trade (every
thread of its process, from /proc, bench_execution's ``measure``). The localnet's CPU is read by
the parent around each phase and divided by all the trades of the phase.

Where the ratio comes from: one engine process is bound by its GIL (at most one core whatever the
machine has); K processes can use up to K cores, and they share the machine's cores with the
localnet (the core count is printed). A trade not ``confirmed`` is an error (exit 1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_cluster import CLUSTER_TOML, TTL_S, Nats, wait_for  # noqa: E402
from bench_execution import (  # noqa: E402
    Driver, Stages, _threads, dev_key, engine_toml, localnet_toml, measure, process_cpu, raw_rate, start_localnet,
    thread_cpu, wait_reconciled,
)

from xorj_actors.cluster import assign  # noqa: E402
from xorj_actors.config import parse_config  # noqa: E402
from xorj_actors.engine import Engine  # noqa: E402
from xorj_actors.localnet import build_genesis  # noqa: E402
from xorj_actors.quotas.settings import MAX_REQUESTS, Endpoint  # noqa: E402
from xorj_actors.signers import vault_id  # noqa: E402

UP_S = 120.0  # a node's start and the leases settling where placement puts them


# -- a child: one engine process ------------------------------------------------------------------


def child_config(args: argparse.Namespace, urls: dict[str, str]) -> Any:
    """bench_execution's engine (dev key, Swap API, no endpoint budgeted), plus ``[cluster]``."""
    _, signer, _ = dev_key()
    toml = engine_toml(localnet_toml(args.vaults, args.slot_ms, []), urls, signer, "swap")
    toml += "".join(f"[quotas.{e.value}]\nrequests = {MAX_REQUESTS}\nwindow_s = 1.0\n" for e in Endpoint)
    if args.nats:  # every vault is the cluster's; a vault actor runs where its lease is held
        if "[vaults]\ncount = 0\n" not in toml:  # bench_execution's engine changed: say so, not 0 vaults
            raise RuntimeError("bench_execution.engine_toml no longer has [vaults] count = 0")
        toml = toml.replace("[vaults]\ncount = 0\n", f"[vaults]\ncount = {args.vaults}\nround_interval_s = 86400.0\n")
        # bench_cluster's [cluster]: config/cluster.toml's timings, on the bench's own NATS.
        toml += CLUSTER_TOML.format(nats=args.nats, ttl=TTL_S) + f'node_id = "{args.child}"\n'
    return parse_config(toml)


def held_vaults(engine: Engine, expected: tuple[str, ...]) -> tuple[str, ...]:
    """The vaults this node holds once they are exactly the ones placement gives it."""
    def settled() -> bool:
        ownership = engine.ownership
        return ownership is not None and set(ownership.owned()) == set(expected)
    wait_for(settled, UP_S, f"node holding its placed vaults {len(expected)}", every=0.1)
    return tuple(engine.ownership.owned())  # type: ignore[union-attr]


def child_main(args: argparse.Namespace) -> int:
    """One engine in this process; a phase per JSON line on stdin, its figures on stdout."""
    urls = json.loads(args.urls)
    environ = {f"XORJ_RECOVERY_KEY_{i}": f"k{i}-{uuid.uuid4().hex}" for i in (1, 2, 3)}
    config = child_config(args, urls)
    engine = Engine(config, Path(args.data_dir), environ=environ)
    engine.start()
    try:
        ref = wait_reconciled(engine, 60)
        genesis = build_genesis(config.localnet)
        driver_ref = Driver.start(ref, genesis, args.vaults)
        driver = driver_ref.actor_inbox.actor
        if args.nats:
            ids = [vault_id(i) for i in range(args.vaults)]
            placed = assign(ids, args.all_nodes.split(","))[args.child]
            held = set(held_vaults(engine, placed))
            # Only the vaults this node holds: the executor's fence refuses the others.
            driver.vault_ids = [v for v in driver.vault_ids if v in held]
        ctx = {"driver_ref": driver_ref, "driver": driver, "stages": Stages(),
               "localnet": argparse.Namespace(pid=args.localnet_pid)}
        # What the engine burns with no trade at all (slot notifications; in a cluster, the lease
        # loop, heartbeats and the held vaults' actors): a share of every trade's CPU below.
        cpu0, t0 = sum(thread_cpu().values()), time.perf_counter()
        time.sleep(2.0)
        idle = (sum(thread_cpu().values()) - cpu0) / (time.perf_counter() - t0)
        print(json.dumps({"ready": args.child, "vaults": len(driver.vault_ids), "idle_cores": idle}), flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd.get("stop"):
                break
            out = measure(ctx, cmd["phase"], cmd["in_flight"], cmd["seconds"], cmd["ramp"])
            for key in ("stages", "handoff_ms", "localnet_cpu_ms_per_trade", "localnet_busy"):
                out.pop(key, None)  # the stages are not timed here; the parent reads the localnet
            print(json.dumps(out), flush=True)
        driver_ref.stop(timeout=10)
    finally:
        hung = engine.stop(timeout=30)
        if hung:
            print(json.dumps({"hung": [str(h) for h in hung]}), flush=True)
    return 0


# -- the parent -----------------------------------------------------------------------------------


class Child:
    """One engine process (this file, ``--child``) and its pipes."""

    def __init__(self, tmp: Path, name: str, args: argparse.Namespace, urls: dict[str, str], localnet_pid: int,
                 nats: str = "", nodes: str = "") -> None:
        self.name = name
        self.ready: dict[str, Any] = {}  # its first answer: vaults held, idle cores
        self.log = tmp / f"{name}.log"
        cmd = [sys.executable, __file__, "--child", name, "--vaults", str(args.vaults), "--slot-ms", str(args.slot_ms),
               "--urls", json.dumps(urls), "--localnet-pid", str(localnet_pid), "--data-dir", str(tmp / name)]
        cmd += ["--nats", nats, "--all-nodes", nodes] if nats else []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log.open("wb"),
                                     text=True, cwd=ROOT)

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        self.proc.wait(30)
        raise RuntimeError(f"engine {self.name} exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> list[str]:
        """Stop the engine; the actors that did not stop (the child's ``hung`` answer)."""
        hung: list[str] = []
        if self.proc.poll() is None:
            try:
                self.send({"stop": True})
                self.proc.stdin.close()  # type: ignore[union-attr]
                for line in self.proc.stdout:  # type: ignore[union-attr]
                    if line.startswith('{"hung"'):
                        hung = json.loads(line)["hung"]
                self.proc.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
                hung = ["(killed)"]
        return hung


def run_engines(children: list[Child], levels: list[int], seconds: float, ramp: float,
                localnet_pid: int) -> list[dict[str, Any]]:
    """Each level's closed loop on every child at once (``level // len(children)`` in flight each)."""
    for c in children:
        c.ready = c.read()
    results = []
    for phase, total in [("warm", 16), *((f"k{k}", k) for k in levels)]:
        each = max(1, total // len(children))
        ln0, t0 = process_cpu(localnet_pid), time.perf_counter()
        for c in children:
            c.send({"phase": phase, "in_flight": each, "seconds": 1.5 if phase == "warm" else seconds,
                    "ramp": 0.0 if phase == "warm" else ramp})
        nodes = {c.name: c.read() for c in children}
        ln1, elapsed = process_cpu(localnet_pid), time.perf_counter() - t0
        trades = sum(n["trades"] for n in nodes.values())
        results.append({
            "phase": phase, "in_flight": each * len(children), "nodes": nodes,
            "rate": sum(n["rate"] for n in nodes.values()),
            "localnet_cpu_ms_per_trade": (ln1 - ln0) * 1e3 / max(trades, 1), "localnet_busy": (ln1 - ln0) / elapsed,
        })
    return results


def setup(tmp: Path, args: argparse.Namespace, urls: dict[str, str], localnet_pid: int, k: int,
          seconds: float, ramp: float, tag: str = "") -> dict[str, Any]:
    """One engine alone (k = 0), or a cluster of k nodes on a private NATS."""
    nats = Nats(tmp) if k else None
    names = [f"node{i}" for i in range(k)] or ["single"]
    tmp = tmp / f"k{k}{tag}"  # a fresh data directory (and NATS store) per setup
    tmp.mkdir()
    children: list[Child] = []
    out: dict[str, Any] = {"k": max(k, 1)}
    try:
        for name in names:
            children.append(Child(tmp, name, args, urls, localnet_pid, nats.url if nats else "", ",".join(names)))
        out["levels"] = run_engines(children, levels_of(args), seconds, ramp, localnet_pid)
        out["vaults"] = {c.name: c.ready["vaults"] for c in children}
        out["idle"] = {c.name: c.ready["idle_cores"] for c in children}
    finally:
        out["hung"] = {c.name: h for c in children if (h := c.stop())}
        if nats is not None:
            nats.stop()
    return out


def levels_of(args: argparse.Namespace) -> list[int]:
    return [int(k) for k in (args.levels or "16,64").split(",")]


def busy(level: dict[str, Any]) -> float:
    """Cores the engine processes of a phase kept busy, in sum."""
    return sum(n["engine_busy"] for n in level["nodes"].values())


def report(raw: dict[str, float], single: dict[str, Any], one_node: dict[str, Any], sharded: dict[str, Any],
           args: argparse.Namespace) -> int:
    cores = os.cpu_count()
    k = sharded["k"]
    print(f"trades USDC->JUP, {args.vaults} vaults, localnet {args.slot_ms} ms slots, confirmed_lag 0, dev key, "
          f"Swap API; closed loop; {cores} cores on this machine (load average {os.getloadavg()[0]:.1f} at the end)")
    print(f"  baseline, same run: localnet raw swaps (pre-signed, sendTransaction skipPreflight) {raw['rate']:,.0f}/s "
          f"({raw['errors']} errors, {raw['not_landed']} of {raw['sampled']} sampled not landed)")
    print(f"  {k}-process vaults held (by lease, cluster on a private nats-server): {sharded['vaults']}")
    print("  {:<26} {:>9} {:>9} {:>7} {:>7} {:>8} {:>26} {:>17} {:>6}".format(
        "setup", "in flight", "trades/s", "vs raw", "p50 ms", "p99 ms", "engine ms/trade (cores)",
        "localnet ms/trade", "cores"))
    errors = raw["errors"] + raw["not_landed"]
    setups = ((single, "1 engine process"), (one_node, "1 node of a cluster"), (sharded, f"{k} engine processes (sum)"))
    for setup_, label in setups:
        print(f"  {label}: idle, before any trade: " + ", ".join(f"{n} {v:.2f} cores" for n, v in setup_["idle"].items()))
        for lv in setup_["levels"]:
            nodes = lv["nodes"]
            per = ", ".join(f"{n['engine_cpu_ms_per_trade']:.2f} ({n['engine_busy']:.2f})" for n in nodes.values())
            worst = max(n["p99_ms"] for n in nodes.values())
            p50 = max(n["p50_ms"] for n in nodes.values())
            bad = {name: n["errors"] for name, n in nodes.items() if n["errors"]}
            if lv["phase"] == "warm":
                if bad:  # e.g. a lease still settling: shown, not counted
                    print(f"  {label}: warm-up errors {json.dumps(bad)[:400]}")
                continue
            errors += sum(sum(e.values()) for e in bad.values())
            print(f"  {label:<26} {lv['in_flight']:>9} {lv['rate']:>9,.0f} {lv['rate'] / raw['rate']:>7.3f} "
                  f"{p50:>7.1f} {worst:>8.1f} {per:>26} {lv['localnet_cpu_ms_per_trade']:>17.2f} "
                  f"{lv['localnet_busy']:>6.2f}")
            if len(nodes) > 1:
                print("  " + " " * 27 + "per node trades/s: " + ", ".join(f"{n} {v['rate']:,.0f}" for n, v in nodes.items()))
            if bad:
                print(f"  {label}: ERRORS: trades not confirmed: {json.dumps(bad)[:800]}")
        for name, n in setup_["levels"][-1]["nodes"].items():  # where each engine's CPU goes
            print(f"    {name} CPU ms per trade by thread at {setup_['levels'][-1]['in_flight']} in flight: "
                  f"{_threads(n['cpu_ms_per_trade'])}")
        if setup_["hung"]:
            errors += 1
            print(f"  {label}: ERROR: actors did not stop: {setup_['hung']}")
    top_1, top_k = single["levels"][-1], sharded["levels"][-1]
    print(f"\nWhere the ratio comes from: the 1-process figure is one engine process, its Python threads under one "
          f"GIL: at most one core. The {k}-process figure uses {k} engine processes (nodes of one cluster, each "
          f"trading only the vaults it holds by lease) on this machine's {cores} cores, which they share with the "
          f"localnet process (and anything else running). At {top_k['in_flight']} in flight: "
          f"{top_k['rate'] / max(top_1['rate'], 1e-9):.2f}x the 1-process rate, with the engines busy "
          f"{busy(top_1):.2f} cores (1 process) and {busy(top_k):.2f} cores ({k} processes in sum), the localnet "
          f"{top_1['localnet_busy']:.2f} and {top_k['localnet_busy']:.2f}.")
    if errors:
        print(f"ERRORS: {errors}")
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s phases (default 8 s)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the setups this many times; medians (default 1)")
    parser.add_argument("--nodes", type=int, default=2, help="K engine processes in the cluster (default 2)")
    parser.add_argument("--vaults", type=int, default=64, help="localnet vaults (default 64)")
    parser.add_argument("--slot-ms", type=int, default=10, help="localnet slot length (default 10, the minimum)")
    parser.add_argument("--levels", help="total trades in flight, one phase each (default 16,64)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # child mode: one engine, this node id
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--localnet-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--nats", default="", help=argparse.SUPPRESS)
    parser.add_argument("--all-nodes", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    if args.nodes < 2:
        parser.error("--nodes: at least 2 (the 1-process figure is always measured)")
    seconds, ramp = (3.0, 1.0) if args.quick else (8.0, 2.0)
    with tempfile.TemporaryDirectory(prefix="bench-sharded-") as tmpdir:
        tmp = Path(tmpdir)
        localnet, urls = start_localnet(tmp, localnet_toml(args.vaults, args.slot_ms, []))
        try:
            rounds = []
            for r in range(args.rounds):  # alternated, so a change of the machine's load hits every setup
                raw = raw_rate(urls, args.vaults, 2.0 if args.quick else 5.0, tmp)
                rounds.append((raw, *(setup(tmp, args, urls, localnet.pid, k, seconds, ramp, f"-r{r}")
                                      for k in (0, 1, args.nodes))))
        except BaseException:
            for log in sorted(tmp.glob("*/*.log")):
                sys.stderr.write(f"--- {log.name}\n{log.read_text()[-3000:]}\n")
            raise
        finally:
            localnet.terminate()
            localnet.wait(10)
    status = 0
    for i, one in enumerate(rounds):
        if len(rounds) > 1:
            print(f"\n# round {i + 1} of {len(rounds)}")
        status |= report(*one, args)
    if len(rounds) > 1:
        summary(rounds)
    return status


def summary(rounds: list[tuple[Any, ...]]) -> None:
    """Median over the rounds, at the highest level: trades/s, its ratio to the round's raw rate,
    and the engines' CPU per trade (mean over nodes)."""
    print(f"\nmedian of {len(rounds)} rounds at the highest level in flight:")
    labels = ("1 engine process", "1 node of a cluster", f"{rounds[0][3]['k']} engine processes (sum)")
    for i, label in enumerate(labels, start=1):
        tops = [(one[0]["rate"], one[i]["levels"][-1]) for one in rounds]
        cpu = [statistics.fmean(n["engine_cpu_ms_per_trade"] for n in t["nodes"].values()) for _, t in tops]
        print(f"  {label:<26} {statistics.median(t['rate'] for _, t in tops):>7,.0f}/s, "
              f"{statistics.median(t['rate'] / raw for raw, t in tops):.3f}x raw, engine {statistics.median(cpu):.2f} ms/trade")


if __name__ == "__main__":
    sys.exit(main())
