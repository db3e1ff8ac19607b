"""Rendezvous placement, pure: the same answer everywhere, and only a node's share moves."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from xorj_actors.cluster import assign, place, weight

VAULTS = [f"vault-{i:04d}" for i in range(1000)]
NODES = ("a", "b", "c")


def test_placement_is_the_same_in_another_process() -> None:
    # Python's hash() is salted per process: two nodes using it would disagree.
    code = "from xorj_actors.cluster import place; print(','.join(place(f'vault-{i:04d}', 'abc') for i in range(50)))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other.split(",") == [place(v, NODES) for v in VAULTS[:50]]


def test_placement_ignores_the_order_and_repeats_of_the_live_set() -> None:
    for vault in VAULTS[:200]:
        assert place(vault, ("c", "a", "b")) == place(vault, ("a", "b", "c", "a"))


def test_the_vaults_spread_over_the_nodes() -> None:
    counts = Counter(place(v, NODES) for v in VAULTS)
    assert set(counts) == set(NODES)
    # 1,000 vaults over 3 nodes: each near 333 (binomial sd ~15; 250 is > 5 sd off).
    assert all(250 <= n <= 420 for n in counts.values()), counts


def test_a_node_joining_takes_only_vaults_it_now_wins() -> None:
    before = {v: place(v, NODES) for v in VAULTS}
    after = {v: place(v, NODES + ("d",)) for v in VAULTS}
    moved = [v for v in VAULTS if before[v] != after[v]]
    assert moved and all(after[v] == "d" for v in moved)
    assert 150 <= len(moved) <= 350  # about a quarter


def test_a_node_leaving_gives_up_only_its_own_vaults() -> None:
    before = {v: place(v, NODES) for v in VAULTS}
    after = {v: place(v, ("a", "c")) for v in VAULTS}
    moved = {v for v in VAULTS if before[v] != after[v]}
    assert moved == {v for v in VAULTS if before[v] == "b"}


def test_assign_lists_every_node_and_every_vault_once() -> None:
    owned = assign(VAULTS[:10], ("b", "a", "idle-node-with-unlucky-weights"))
    assert sorted(v for vaults in owned.values() for v in vaults) == VAULTS[:10]
    assert set(owned) == {"a", "b", "idle-node-with-unlucky-weights"}


def test_no_live_node_is_an_error() -> None:
    with pytest.raises(ValueError, match="vault-0001: no live node"):
        place("vault-0001", ())


def test_weight_is_blake2b_of_both_ids() -> None:
    import hashlib

    assert weight("a", "vault-0001") == int.from_bytes(hashlib.blake2b(b"a\0vault-0001", digest_size=8).digest(), "big")
    assert weight("a", "vault-0001") != weight("vault-0001", "a")
