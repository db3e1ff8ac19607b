"""The lease loop's pure rules and the fence holder: times and sets in, decisions out."""

from __future__ import annotations

import threading

from xorj_actors.cluster import (
    Fence,
    FenceRefusal,
    LeaseClock,
    LeaseGrant,
    LeaseHolder,
    LeaseInfo,
    LeaseToken,
    NodeIdentity,
    assign,
    placed_here,
    placement,
    renewals,
)

CLOCK = LeaseClock(ttl_s=10.0, margin_s=3.0, renew_every_s=2.0)
A = NodeIdentity("a", "inc-a", 0.0)
VAULTS = tuple(f"vault-{i:04d}" for i in range(200))


def _info(vault: str, node: str, incarnation: str) -> LeaseInfo:
    return LeaseInfo(vault, LeaseHolder(node, incarnation, 0.0), 7)


def test_expired_grants_are_lost_and_due_ones_renewed_busy_ones_left_alone() -> None:
    held = {
        "vault-0001": LeaseGrant("vault-0001", 1, sent_at=100.0),  # deadline 107
        "vault-0002": LeaseGrant("vault-0002", 2, sent_at=104.0),  # due at 106
        "vault-0003": LeaseGrant("vault-0003", 3, sent_at=105.5),  # not due yet
        "vault-0004": LeaseGrant("vault-0004", 4, sent_at=90.0),  # expired, but being released
    }
    step = renewals(held, CLOCK, 107.0, busy={"vault-0004"})
    assert step.expired == ("vault-0001",)
    assert step.due == ("vault-0002",)


def test_placement_takes_free_leases_waits_for_taken_ones_and_gives_up_the_rest() -> None:
    live = ("a", "b")
    mine = placed_here(VAULTS, live, A)
    others = [v for v in VAULTS if v not in mine]
    assert mine and others and set(mine) == set(assign(VAULTS, live)["a"])
    free, taken, ours_unanswered, busy = mine[0], mine[1], mine[2], mine[3]
    held = {others[0], mine[4]}  # one held here though placed on b, one rightly held
    leases = {
        taken: _info(taken, "b", "inc-b"),  # b still holds it (e.g. before its TTL ran out)
        ours_unanswered: _info(ours_unanswered, "a", "inc-a"),  # our own create whose answer was lost
    }
    plan = placement(VAULTS, live, A, held, leases, busy={busy})
    assert free in plan.acquire and ours_unanswered in plan.acquire
    assert plan.waiting == (taken,)
    assert busy not in plan.acquire and mine[4] not in plan.acquire
    assert plan.release == (others[0],)


def test_a_previous_runs_lease_of_the_same_node_id_is_waited_for() -> None:
    vault = placed_here(VAULTS, ("a",), A)[0]
    plan = placement(VAULTS, ("a",), A, set(), {vault: _info(vault, "a", "an-earlier-run")})
    assert vault in plan.waiting and vault not in plan.acquire


def test_a_node_counts_itself_alive_and_nobody_else_places_nothing_elsewhere() -> None:
    assert placed_here(VAULTS, (), A) == VAULTS
    assert placement(VAULTS, (), A, set(VAULTS), {}).release == ()


def test_the_fence_holds_only_a_held_lease_before_its_deadline() -> None:
    now = [100.0]
    fence = Fence(CLOCK, now=lambda: now[0])
    assert fence.fence("vault-0001") is FenceRefusal.NOT_HELD
    fence.grant(LeaseGrant("vault-0001", 5, sent_at=100.0))
    assert fence.fence("vault-0001") == LeaseToken("vault-0001", 5, 107.0, tenure=1)
    now[0] = 107.0
    assert fence.fence("vault-0001") is FenceRefusal.EXPIRED
    assert fence.held() == ("vault-0001",) and fence.usable() == ()
    fence.grant(LeaseGrant("vault-0001", 6, sent_at=106.0))  # renewed: new revision, new deadline
    assert fence.fence("vault-0001") == LeaseToken("vault-0001", 6, 113.0, tenure=1)  # the same holding
    assert fence.revoke("vault-0001") is not None
    assert fence.fence("vault-0001") is FenceRefusal.NOT_HELD


def test_a_lease_taken_again_after_a_loss_is_a_new_holding_a_renewal_is_not() -> None:
    fence = Fence(CLOCK, now=lambda: 100.0)
    fence.grant(LeaseGrant("vault-0001", 5, sent_at=100.0))
    fence.grant(LeaseGrant("vault-0002", 9, sent_at=100.0))
    first = fence.fence("vault-0001")
    fence.grant(LeaseGrant("vault-0001", 6, sent_at=100.0))
    assert fence.fence("vault-0001").tenure == first.tenure  # type: ignore[union-attr]
    fence.revoke("vault-0001")
    fence.grant(LeaseGrant("vault-0001", 8, sent_at=100.0))  # lost, then acquired again
    again = fence.fence("vault-0001")
    assert isinstance(again, LeaseToken) and again.tenure not in (first.tenure, fence.fence("vault-0002").tenure)  # type: ignore[union-attr]


def test_the_fence_is_read_safely_while_another_thread_grants_and_revokes() -> None:
    fence = Fence(CLOCK, now=lambda: 100.0)
    stop = threading.Event()
    seen: list[object] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            fence.grant(LeaseGrant("vault-0001", n, sent_at=100.0))
            fence.revoke("vault-0001")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(20_000):
            seen.append(fence.fence("vault-0001"))
    finally:
        stop.set()
        thread.join()
    assert all(s is FenceRefusal.NOT_HELD or isinstance(s, LeaseToken) for s in seen)
