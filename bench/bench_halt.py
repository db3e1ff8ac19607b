"""Engine figures: halt broadcast to N actors, and tell/ask between two actors.

    .venv/bin/python bench/bench_halt.py            # ~2-3 minutes
    .venv/bin/python bench/bench_halt.py --quick    # ~30-50 s: fewer repeats, N still up to 10,000

Halt (N = 100, 1,000, 10,000), three implementations of one protocol: every participant tells
``Register`` on start, a ``Halt`` is broadcast, every participant answers ``HaltAck``; the
figure is the time from the trigger until the last ack has been counted.

- ours: the real ``KillSwitch`` and N real ``Vault`` participants on ``supervisors.Runtime``
  (the engine's default pool size). Timed from ``tell(Trigger)`` in the main thread to the kill
  switch's ``on_event("halt complete")`` callback (no polling); so it also pays the state file
  write + fsync of the TRIGGERED transition. The kill switch's own ``halt_latency_s`` (from its
  handling of the Trigger) is shown beside it.
- pykka: plain pykka thread-per-actor, N ``ThreadingActor`` participants and a collector actor;
  the main thread tells ``Halt`` to each, the collector counts acks.
- asyncio: N tasks each awaiting its own ``asyncio.Queue``, a collector task.

Each (implementation, N) runs in a fresh subprocess (``bench/halt_cases.py``) so RSS and threads do not mix. Start-up is
the time to start N participants until all have registered (ours: the kill switch's participant
count, read directly). RSS is read with psutil once all have registered.

Tell: a sender actor tells M ``Ping`` messages to a receiver actor, timed until the receiver has
counted all M; ask: the main thread asks the receiver, one round trip at a time. Ours vs pykka.

Targets (issue 2): N=10,000 halted and acked in <= 100 ms (median), <= 100 MB RSS, started in
<= 1 s; tell throughput >= plain pykka. A missed target prints MISSED; the exit status is
non-zero only on errors.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

SIZES = (100, 1_000, 10_000)
HALT_IMPLS = ("ours", "pykka", "asyncio")
TELL_IMPLS = ("ours", "pykka")
TARGET_HALT_S = 0.100
TARGET_RSS_MB = 100.0
TARGET_START_S = 1.0
#: The per-case subprocess.
CASES = Path(__file__).resolve().with_name("halt_cases.py")


# -- the subprocess side ---------------------------------------------------------------------


def run_worker(kind: str, impl: str, n: int, runs: int, warmup: int, asks: int = 0) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; on failure ``{"error": its stderr's tail}``."""
    cmd = [sys.executable, str(CASES), kind, impl, "--n", str(n),
           "--runs", str(runs), "--warmup", str(warmup), "--asks", str(asks)]
    with tempfile.TemporaryFile("w+") as err, tempfile.TemporaryDirectory(prefix="bench-halt-") as tmp:
        env = {**os.environ, "BENCH_HALT_TMP": tmp}
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=600, check=False, env=env)
        except subprocess.TimeoutExpired:
            return {"error": "timed out after 600 s"}
        if proc.returncode != 0 or not proc.stdout.strip():
            err.seek(0)
            lines = [line for line in err.read().splitlines() if "| INFO " not in line and "| CRITICAL " not in line]
            return {"error": f"exit {proc.returncode}: " + "\n".join(lines[-6:])}
    return json.loads(proc.stdout.strip().splitlines()[-1])



# -- the report ------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f}"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"date {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC | {os.cpu_count()} cores "
        f"({len(os.sched_getaffinity(0))} usable) | Python {platform.python_version()} | pykka "
        f"{version('pykka')} | {platform.machine()} {platform.system()} {platform.release()} | load avg {load}"
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report_halt(results: dict[tuple[str, int], dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Print the halt table and the targets; returns (targets missed, errors)."""
    missed, errors = [], []
    print("\nHalt broadcast: trigger -> every participant acked. Wall ms over the runs (count in brackets);"
          "\nks-int: the kill switch's own latency; cpu: process CPU ms per halt; RSS: total (+ over the"
          "\ninterpreter with the same imports, measured before start-up); ratios: median / other median")
    print(f"{'N':>6} {'impl':<8} {'median':>8} {'p99':>8} {'min':>8} {'max':>8} {'ks-int':>8} {'cpu':>8}"
          f" {'start s':>7} {'RSS MB':>13} {'thr':>6} {'vs pykka':>9} {'vs async':>9}")
    for n in SIZES:
        base = {impl: median(results[impl, n].get("latency_s", [])) for impl in HALT_IMPLS}
        for impl in HALT_IMPLS:
            r = results[impl, n]
            if "error" in r:
                errors.append(f"{impl} N={n}: {r['error']}")
                print(f"{n:>6} {impl:<8} ERROR (below)")
                continue
            lat = r["latency_s"] or [float("nan")]
            med = base[impl]
            internal = ms(median(r["internal_s"])) if "internal_s" in r else f"{'-':>8}"
            rss = f"{r['rss_mb']:.0f} (+{r['rss_mb'] - r['rss_base_mb']:.0f})"
            print(f"{n:>6} {impl:<8} {ms(med)} {ms(pct(lat, 0.99))} {ms(min(lat))} {ms(max(lat))} {internal}"
                  f" {ms(median(r['cpu_s']))} {r['startup_s']:7.2f} {rss:>13} {r['threads']:>6}"
                  f" {med / base['pykka']:8.3f}x {med / base['asyncio']:8.3f}x [{len(r['latency_s'])}]")
            if r["incomplete"]:
                errors.append(f"{impl} N={n}: {r['incomplete']} halt(s) never completed; {r['lost']} messages "
                              "refused by the kill switch's full mailbox (MailboxFull)")
    ours = results["ours", SIZES[-1]]
    if "error" in ours:
        return [*missed, "every N=10,000 target (no figures)"], errors
    checks = [
        (f"halt N={SIZES[-1]:,} median", median(ours["latency_s"]) * 1e3, "ms", TARGET_HALT_S * 1e3),
        (f"RSS N={SIZES[-1]:,}", ours["rss_mb"], "MB", TARGET_RSS_MB),
        (f"start-up N={SIZES[-1]:,}", ours["startup_s"], "s", TARGET_START_S),
    ]
    print("\nTargets (ours):")
    for what, value, unit, target in checks:
        ok = value <= target
        print(f"  {what:<22} {value:9.2f} {unit:<3} target <= {target:g} {unit:<3} {verdict(ok)}")
        if not ok:
            missed.append(what)
    return missed, errors


def report_tell(results: dict[str, dict[str, Any]], messages: int) -> list[str]:
    print(f"\nTell: sender actor -> receiver actor, {messages:,} messages per run; ask: main thread -> receiver")
    print(f"{'impl':<8} {'tell/s med':>11} {'min':>9} {'max':>9} {'vs pykka':>9}   {'ask med us':>10} {'ask p99 us':>10} {'vs pykka':>9}")
    tell_base = statistics.median(results["pykka"]["tell_per_s"])
    ask_base = statistics.median(results["pykka"]["ask_s"])
    for impl in TELL_IMPLS:
        rates, asks = results[impl]["tell_per_s"], results[impl]["ask_s"]
        rate, rt = statistics.median(rates), statistics.median(asks)
        print(f"{impl:<8} {rate:11,.0f} {min(rates):9,.0f} {max(rates):9,.0f} {rate / tell_base:8.2f}x   "
              f"{rt * 1e6:10.1f} {pct(asks, 0.99) * 1e6:10.1f} {rt / ask_base:8.2f}x")
    ours = statistics.median(results["ours"]["tell_per_s"])
    ok = ours >= tell_base
    print(f"\nTarget: tell ours >= plain pykka: {ours / tell_base:.2f}x {verdict(ok)}")
    return [] if ok else ["tell throughput"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ~30 s run: fewer repeats")
    parser.add_argument("--only", choices=("halt", "tell"), help="run one half")
    args = parser.parse_args()
    began = time.monotonic()
    print(f"bench_halt{' --quick' if args.quick else ''} | {machine()}")
    missed: list[str] = []
    errors: list[str] = []
    if args.only != "tell":
        halt: dict[tuple[str, int], dict[str, Any]] = {}
        for n in SIZES:
            for impl in HALT_IMPLS:
                slow = impl == "pykka" and n >= 10_000  # 2-10 s a run
                runs, warmup = ((1, 0) if slow else (7, 1)) if args.quick else ((7, 1) if slow else (15, 2))
                halt[impl, n] = run_worker("halt", impl, n, runs, warmup)
                print(f"  halt {impl:<7} N={n:<6} done ({time.monotonic() - began:5.1f} s)", flush=True)
        m, e = report_halt(halt)
        missed += m
        errors += e
    if args.only != "halt":
        messages, runs, asks = (50_000, 5, 500) if args.quick else (200_000, 7, 3_000)
        tell = {impl: run_worker("tell", impl, messages, runs, 1, asks) for impl in TELL_IMPLS}
        failed = [f"tell {impl}: {r['error']}" for impl, r in tell.items() if "error" in r]
        if failed:
            errors += failed
        else:
            missed += report_tell(tell, messages)
    print(f"\n{len(missed)} target(s) missed{': ' + ', '.join(missed) if missed else ''}; "
          f"{time.monotonic() - began:.0f} s; load avg now {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0

if __name__ == "__main__":
    sys.exit(main())
