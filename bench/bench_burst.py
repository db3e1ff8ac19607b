"""Burst figures: every vault trades at once behind a Jupiter budget that binds (issue 13).

    .venv/bin/python bench/bench_burst.py                # 1,000 vaults, 2,000 trades, ~1.5 minutes
    .venv/bin/python bench/bench_burst.py --quick        # 200 vaults, 400 trades, ~30 s
    .venv/bin/python bench/bench_burst.py --api ultra    # Ultra instead of the Swap API

A ranked trader's change makes every vault rebalance at once. Each case runs in a fresh child
process (this file with ``--case``) that starts a localnet process with ``--vaults`` vaults and
the real engine (dev-key signer) pointed at it, as bench_execution does, and a driver that tells
the Executor all the trades at once (``--trades``, the vaults in turn: 2 per vault by default,
USDC -> JUP, tier: 1 confirmation) and takes every outcome. Two cases, same trades, same code:

- ``budget``: the Jupiter bucket (``[quotas.jupiter_quote]``, shared by quote,
  swap-instructions, order, execute and price) at ``--rate`` requests per 1 s window
  (default 200; ``--quick`` 100) with its default burst (``requests // 20``);
- ``baseline``: the same bucket at 1,000,000 a second: the budget does not bind, so the time is
  the engine's and the localnet's own (the budget binds when the budgeted case takes longer).

(The engine's ``[localnet]`` is not enabled here: the localnet is another process, reached
through the ``[execution]`` URLs, so the executor's calls are budgeted as a real provider's.)

Figures, each case:

- completion: from the first trade told to the last outcome handled;
- theoretical minimum = (Jupiter calls granted - burst) / refill rate, with refill rate =
  (requests - burst + 1) / window_s (docs/QUOTAS.md: the bucket starts full with ``burst``
  tokens). The calls are the engine's own count (``engine.quotas.snapshot()``, ``granted`` summed
  over the endpoints that draw from the Jupiter bucket, after minus before), so a re-quote is
  counted; calls per trade are printed (the Swap API makes 3: quote, swap-instructions, price;
  Ultra 3: order, price, execute);
- efficiency = minimum / completion (target >= 0.9, budgeted case);
- fairness: each vault's mean wait (told -> outcome handled) over its trades; the largest over
  the mean of all vaults' means (target <= 2);
- 429s received: ``xorj_rpc_429_total`` summed over endpoints (target 0);
- trades lost: told minus final outcomes (target 0); trades that ended other than ``confirmed``
  are listed too.

A missed efficiency or fairness target is a figure (MISSED); a lost trade, a 429 or a trade that
did not end ``confirmed`` is an error (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_execution import (  # noqa: E402
    Burst, Driver, dev_key, engine_toml, localnet_toml, start_localnet, stop_case, wait_reconciled,
)

from xorj_actors.config import parse_config  # noqa: E402
from xorj_actors.engine import Engine  # noqa: E402
from xorj_actors.localnet import build_genesis  # noqa: E402
from xorj_actors.quotas import Endpoint  # noqa: E402

TARGET_EFFICIENCY = 0.9
TARGET_FAIRNESS = 2.0
UNBOUND = 1_000_000  # the baseline's budget: the largest [quotas] accepts, per 1 s
SLOT_MS = 10
#: The calls each ``[jupiter] api`` makes per trade, all drawn from the Jupiter bucket.
API_CALLS = {
    "swap": "GET /swap/v1/quote, POST /swap/v1/swap-instructions, GET /price/v3 (3 per trade)",
    "ultra": "GET /ultra/v1/order, GET /price/v3, POST /ultra/v1/execute (3 per trade)",
}


def quotas_toml(requests: int) -> str:
    """The Jupiter bucket at ``requests`` per 1 s window, default burst (``requests // 20``); the
    RPC's and the WebSocket's budgets unbound, so the one bucket measured is the one that binds."""
    unbound = "".join(
        f"[quotas.{e}]\nrequests = {UNBOUND}\nwindow_s = 1.0\n"
        for e in ("rpc_send", "rpc_read", "rpc_simulate", "ws_subscriptions")
    )
    return f"[quotas.jupiter_quote]\nrequests = {requests}\nwindow_s = 1.0\n" + unbound


def jupiter_granted(snapshot: dict[str, dict[str, Any]]) -> int:
    """Calls granted by the Jupiter bucket: every endpoint that draws from it."""
    return sum(row["granted"] for row in snapshot.values() if row["bucket"] == Endpoint.JUPITER_QUOTE.value)


def count_429(engine: Engine) -> dict[str, int]:
    """``xorj_rpc_429_total`` and ``xorj_quota_self_inflicted_429_total``, summed over endpoints."""
    registry = engine.metrics.registry
    out = {}
    for name in ("xorj_rpc_429_total", "xorj_quota_self_inflicted_429_total"):
        out[name] = int(sum(registry.get_sample_value(name, {"endpoint": e.value}) or 0 for e in Endpoint))
    return out


class Sampler:
    """The Jupiter bucket each ``every`` s on a thread: grants and waiters, to show whether it
    was the bucket or the engine that held trades back (an idle bucket with trades open)."""

    def __init__(self, engine: Engine, every: float = 0.5) -> None:
        self.engine, self.every = engine, every
        self.rows: list[tuple[float, int, int]] = []  # (perf_counter, granted so far, waiting)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="burst-sampler", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            snap = self.engine.quotas.snapshot()
            self.rows.append((time.perf_counter(), jupiter_granted(snap), snap[Endpoint.JUPITER_QUOTE.value]["waiting"]))
            self.stop.wait(self.every)

    def figures(self, rate: float) -> dict[str, Any]:
        """Until the last grant: share of samples with nobody waiting (the engine, not the bucket,
        held trades back) and grants per second (min, median, max); when the last grant came."""
        rows = self.rows
        done = next((i for i, r in enumerate(rows) if r[1] == rows[-1][1]), 0) if rows else 0
        granting = rows[: done + 1]
        rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(granting, granting[1:]) if b[0] > a[0]]
        return {
            "idle_share": sum(1 for r in granting[1:-1] if r[2] == 0) / max(len(granting) - 2, 1),
            "grant_rate": [min(rates, default=0.0), statistics.median(rates) if rates else 0.0, max(rates, default=0.0)],
            "last_grant_s": granting[-1][0] - rows[0][0] if rows else 0.0,
            "refill_rate": rate,
        }


def burst_figures(driver: Driver, told_n: int) -> dict[str, Any]:
    """Completion, per-vault waits, fairness, lost and not-confirmed trades, from the driver's log."""
    waits: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    for trade_id, told in driver.told.items():
        end = driver.ended.get(trade_id)
        if end is None:
            continue  # lost: counted below
        waits[trade_id.split(":bench-", 1)[0]].append(end[0] - told)
        statuses[end[1]] += 1
        if end[1] != "confirmed":
            errors[(end[2] or end[1])[:160]] += 1
    means = [statistics.fmean(w) for w in waits.values()]
    first = min(driver.told.values())
    last = max((e[0] for e in driver.ended.values()), default=first)
    mean_of_means = statistics.fmean(means) if means else 0.0
    all_waits = sorted(w for ws in waits.values() for w in ws)
    return {
        "told": told_n, "outcomes": len(driver.ended), "lost": told_n - len(driver.ended),
        "statuses": dict(statuses), "errors": dict(errors), "vaults": len(waits),
        "completion_s": last - first,
        "vault_mean_wait_s": mean_of_means, "vault_max_mean_wait_s": max(means, default=0.0),
        "vault_min_mean_wait_s": min(means, default=0.0),
        "fairness": max(means) / mean_of_means if mean_of_means > 0 else 0.0,
        "wait_p50_s": all_waits[len(all_waits) // 2] if all_waits else 0.0,
        "wait_max_s": all_waits[-1] if all_waits else 0.0,
        "timed_out_notices": len(driver.timed_out),
    }


def case_main(args: argparse.Namespace) -> int:
    """One case (``budget`` or ``baseline``) in this fresh process; prints its figures as JSON."""
    requests = args.rate if args.case == "budget" else UNBOUND
    result: dict[str, Any] = {"case": args.case, "api": args.api, "requests": requests,
                              "load_avg_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmpdir:
        tmp = Path(tmpdir)
        _, signer_toml, environ = dev_key()
        section = localnet_toml(args.vaults, SLOT_MS, [])
        started = time.perf_counter()
        localnet, urls = start_localnet(tmp, section)
        result["localnet_start_s"] = time.perf_counter() - started
        engine = None
        try:
            environ |= {f"XORJ_RECOVERY_KEY_{i}": f"k{i}-{uuid.uuid4().hex}" for i in (1, 2, 3)}
            config = parse_config(engine_toml(section, urls, signer_toml, args.api) + quotas_toml(requests))
            engine = Engine(config, tmp / "var", environ=environ)
            engine.start()
            ref = wait_reconciled(engine, 60)
            driver_ref = Driver.start(ref, build_genesis(config.localnet), args.vaults)
            driver = driver_ref.actor_inbox.actor
            before = engine.quotas.snapshot()
            row = before[Endpoint.JUPITER_QUOTE.value]
            result["burst"], result["window_s"], result["tokens_at_start"] = row["burst"], row["window_s"], row["tokens"]
            sampler = Sampler(engine)
            sampler.thread.start()
            driver.idle.clear()
            # All at once: as many in flight as there are trades, so the driver tells every one
            # in a single message and tells no more as outcomes arrive.
            driver_ref.tell(Burst(phase=args.case, in_flight=args.trades, total=args.trades, until=float("inf")))
            # Generous: 4x the budgeted minimum, plus time for a loaded machine.
            limit = 4 * 3 * args.trades / args.rate + 120
            if not driver.idle.wait(limit):
                result["stuck"] = f"trades still open {limit:.0f} s after the burst was told"
            sampler.stop.set()
            sampler.thread.join(5)
            after = engine.quotas.snapshot()
            result["sampled"] = sampler.figures((row["requests"] - row["burst"] + 1) / row["window_s"])
            result |= burst_figures(driver, len(driver.told))
            result["granted"] = jupiter_granted(after) - jupiter_granted(before)
            result["granted_by_endpoint"] = {
                e: after[e]["granted"] - before[e]["granted"] for e in after
                if after[e]["bucket"] == Endpoint.JUPITER_QUOTE.value and after[e]["granted"] - before[e]["granted"]
            }
            result["not_served"] = {k: sum(after[e][k] - before[e][k] for e in after) for k in ("queue_full", "expired", "dropped")}
            result |= count_429(engine)
            driver_ref.stop(timeout=10)
        finally:
            stop_case(engine, localnet, result)
    result["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(result))
    return 0


def minimum_s(r: dict[str, Any]) -> float:
    """Calls granted beyond the starting burst, over the bucket's refill rate."""
    rate = (r["requests"] - r["burst"] + 1) / r["window_s"]
    return max(r["granted"] - r["burst"], 0) / rate


def run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    """One case in a fresh child process."""
    cmd = [sys.executable, __file__, "--case", case, "--api", args.api, "--vaults", str(args.vaults),
           "--trades", str(args.trades), "--rate", str(args.rate)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr[-4000:])
        return {"case": case, "fatal": f"child exited {done.returncode}"}
    return json.loads(lines[-1])


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> int:
    """The table, targets and verdicts; 1 on a lost trade, a 429 or a trade not confirmed."""
    errors = 0
    print(f"burst: {args.trades:,} trades (USDC->JUP, {args.trades / args.vaults:g} per vault) told at once to the "
          f"engine, {args.vaults:,} vaults, localnet {SLOT_MS} ms slots, dev-key signer, tier: 1 confirmation")
    print(f'[jupiter] api = "{args.api}": {API_CALLS[args.api]}; all in one bucket, [quotas.jupiter_quote]')
    print("minimum = (Jupiter calls granted - burst) / ((requests - burst + 1) / window_s); "
          "efficiency = minimum / completion\n")
    head = ("case", "budget", "calls", "/trade", "completion s", "minimum s", "efficiency", "fairness",
            "vault mean wait s", "max vault mean s", "429s", "lost", "not confirmed")
    print("  {:<8} {:>18} {:>6} {:>6} {:>12} {:>9} {:>10} {:>8} {:>17} {:>16} {:>4} {:>4} {:>13}".format(*head))
    for r in results:
        if "fatal" in r:
            print(f"  {r['case']:<8} ERROR: {r['fatal']}")
            errors += 1
            continue
        budget = f"{r['requests']:,}/{r['window_s']:g}s burst {r['burst']:,}" if r["case"] == "budget" else "off (1,000,000/s)"
        minimum = minimum_s(r)
        r["minimum_s"] = minimum
        r["efficiency"] = minimum / r["completion_s"] if r["completion_s"] > 0 else 0.0
        eff = f"{r['efficiency']:.3f}" if r["case"] == "budget" else "-"
        mins = f"{minimum:.2f}" if r["case"] == "budget" else "-"
        bad = sum(r["statuses"].get(s, 0) for s in r["statuses"] if s != "confirmed")
        print(f"  {r['case']:<8} {budget:>18} {r['granted']:>6,} {r['granted'] / max(r['told'], 1):>6.2f} "
              f"{r['completion_s']:>12.2f} {mins:>9} {eff:>10} {r['fairness']:>8.2f} {r['vault_mean_wait_s']:>17.2f} "
              f"{r['vault_max_mean_wait_s']:>16.2f} {r['xorj_rpc_429_total']:>4} {r['lost']:>4} {bad:>13}")
    print()
    for r in results:
        if "fatal" in r:
            continue
        print(f"[{r['case']}] calls granted by endpoint: {json.dumps(r['granted_by_endpoint'])}; not served: "
              f"{json.dumps(r['not_served'])}; waits: p50 {r['wait_p50_s']:.2f} s, max {r['wait_max_s']:.2f} s, "
              f"vault means {r['vault_min_mean_wait_s']:.2f}..{r['vault_max_mean_wait_s']:.2f} s; load average "
              f"{r['load_avg_start']:.1f} -> {r['load_avg_end']:.1f}; localnet start {r['localnet_start_s']:.1f} s")
        sm = r["sampled"]
        print(f"[{r['case']}] the Jupiter bucket every 0.5 s until its last grant ({sm['last_grant_s']:.1f} s in; the "
              f"rest is the engine's tail): nobody waiting in {sm['idle_share']:.0%} of samples; grants per second "
              f"min {sm['grant_rate'][0]:.0f}, median {sm['grant_rate'][1]:.0f}, max {sm['grant_rate'][2]:.0f} "
              f"(refill {sm['refill_rate']:,.0f}/s)")
        problems: dict[str, Any] = dict(r["errors"])
        if r.get("stuck"):
            problems["stuck"] = r["stuck"]
        if r.get("hung"):
            problems["actors did not stop"] = r["hung"]
        if r["xorj_quota_self_inflicted_429_total"]:
            problems["self-inflicted 429s"] = r["xorj_quota_self_inflicted_429_total"]
        if problems or r["lost"] or r["xorj_rpc_429_total"]:
            errors += sum(r["errors"].values()) + r["lost"] + r["xorj_rpc_429_total"] + bool(r.get("stuck") or r.get("hung"))
            print(f"[{r['case']}] ERRORS: {json.dumps(problems)[:800]}")
    budget = next((r for r in results if r["case"] == "budget" and "fatal" not in r), None)
    base = next((r for r in results if r["case"] == "baseline" and "fatal" not in r), None)
    print()
    if budget:
        if base:
            print(f"the budget binds: completion {budget['completion_s']:.2f} s with it, {base['completion_s']:.2f} s "
                  f"without (x{budget['completion_s'] / max(base['completion_s'], 1e-9):.1f})"
                  if budget["completion_s"] > base["completion_s"] else
                  f"the budget does NOT bind: {budget['completion_s']:.2f} s with it, {base['completion_s']:.2f} s "
                  "without: lower --rate")
        print(f"target efficiency >= {TARGET_EFFICIENCY}: {budget['efficiency']:.3f}: "
              f"{verdict(budget['efficiency'] >= TARGET_EFFICIENCY)}")
        print(f"target fairness (largest vault mean wait / mean of vault means) <= {TARGET_FAIRNESS:g}: "
              f"{budget['fairness']:.2f}: {verdict(budget['fairness'] <= TARGET_FAIRNESS)}")
        print(f"target 429s received 0: {budget['xorj_rpc_429_total']}: {verdict(budget['xorj_rpc_429_total'] == 0)}")
        print(f"target trades lost 0: {budget['lost']}: {verdict(budget['lost'] == 0)}")
    if errors:
        print(f"ERRORS: {errors}")
    return 1 if errors else 0  # a missed efficiency or fairness target is a figure, not an error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 vaults, 400 trades, 100 Jupiter calls a second")
    parser.add_argument("--api", choices=("swap", "ultra"), default="swap", help="the [jupiter] api (default swap)")
    parser.add_argument("--vaults", type=int, help="localnet vaults (default 1,000; --quick 200)")
    parser.add_argument("--trades", type=int, help="trades told at once, the vaults in turn (default 2 per vault)")
    parser.add_argument("--rate", type=int, help="Jupiter requests per 1 s window (default 200; --quick 100)")
    parser.add_argument("--only", choices=("budget", "baseline"), help="run one case")
    parser.add_argument("--case", choices=("budget", "baseline"), help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    args.vaults = args.vaults or (200 if args.quick else 1_000)
    args.trades = args.trades or 2 * args.vaults
    args.rate = args.rate or (100 if args.quick else 200)
    if args.vaults < 1 or args.trades < 1 or not 1 <= args.rate <= UNBOUND:
        raise SystemExit("--vaults and --trades must be >= 1, --rate between 1 and 1,000,000")
    if args.case:
        return case_main(args)
    cases = [args.only] if args.only else ["baseline", "budget"]
    return report([run_case(case, args) for case in cases], args)


if __name__ == "__main__":
    sys.exit(main())
