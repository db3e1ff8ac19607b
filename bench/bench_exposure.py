"""Exposure board figures: the cost of one vault's check against the engine-wide correlated
exposure limit (``limits()`` then ``reserve()`` and the buy's ``settle``) as the number of vaults
grows (docs/RISK.md, "Correlated exposure").

    .venv/bin/python bench/bench_exposure.py            # 100 and 10,000 vaults
    .venv/bin/python bench/bench_exposure.py --quick    # 100 and 1,000 vaults

Each vault holds every one of 12 tokens in 3 clusters of 4. The baseline in the same run is the
board with 100 vaults: the board keeps running per-mint totals, so the ratio should stay near 1
(the review measured 31.6 ms a call at 10,000 vaults when the totals were summed over every
vault at each call).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xorj_actors.correlation import Buy, CorrelationSettings, ExposureBoard  # noqa: E402

TOKENS = [f"T{i:02d}" for i in range(12)]
CLUSTERS = tuple(tuple(TOKENS[i:i + 4]) for i in range(0, 12, 4))


def board_of(vaults: int) -> ExposureBoard:
    board = ExposureBoard(CorrelationSettings(global_max_usd=10**12))
    board.publish(dataclasses.replace(board.snapshot, clusters=CLUSTERS))
    held = {t: Fraction(100) for t in TOKENS}
    for v in range(vaults):
        board.hold(f"v{v}", held, Fraction(1200), board.tick())
    return board


def per_check_us(board: ExposureBoard, rounds: int) -> float:
    """Median over 5 runs of the microseconds one vault's limits + reserve + settle take."""
    runs = []
    for run in range(5):
        start = time.perf_counter()
        for i in range(rounds):
            board.limits()
            trade = f"t{run}-{i}"
            assert board.reserve("v0", [Buy(trade, TOKENS[i % 12], Fraction(1))]) is None
            board.settle(trade, confirmed=False)
        runs.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 vaults")
    args = parser.parse_args()
    sizes = (100, 1_000) if args.quick else (100, 10_000)
    base = per_check_us(board_of(sizes[0]), 2_000)
    print("exposure board, one vault's check (limits + reserve + settle), median of 5 x 2,000")
    print(f"  {sizes[0]:>6} vaults: {base:8.1f} us   (baseline)")
    for n in sizes[1:]:
        cost = per_check_us(board_of(n), 2_000)
        print(f"  {n:>6} vaults: {cost:8.1f} us   ratio {cost / base:.2f}")


if __name__ == "__main__":
    main()
