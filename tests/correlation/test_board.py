"""The exposure board: per-mint stakes summed over the clusters of now, reservations by trade id,
and no engine-wide room until every registered vault has published its holdings."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

from xorj_actors.correlation import Buy, CorrelationSettings, ExposureBoard, NoRoom

A, B, C = "A", "B", "C"
CAP = CorrelationSettings(global_max_usd=1000)


def board_with(*clusters: tuple[str, ...]) -> ExposureBoard:
    board = ExposureBoard(CAP)
    board.publish(dataclasses.replace(board.snapshot, clusters=clusters))
    return board


def hold(board: ExposureBoard, vault: str, **usd: int) -> None:
    board.hold(vault, {m: Fraction(v) for m, v in usd.items()}, Fraction(sum(usd.values())), board.tick())


def test_a_re_estimate_keeps_every_vaults_holdings_in_the_new_cluster() -> None:
    board = board_with((A, B))
    hold(board, "v1", A=500, B=400)
    assert board.limits().global_room == {(A, B): Fraction(100)}
    board.publish(dataclasses.replace(board.snapshot, clusters=((A, B, C),)))  # C joined the pair
    assert board.limits().global_room == {(A, B, C): Fraction(100)}
    refused = board.reserve("v2", [Buy("t1", C, Fraction(1000))])
    assert refused == NoRoom((A, B, C), Fraction(1000), Fraction(100))
    assert "room 100.00 USD" in refused.detail
    assert board.reserve("v2", [Buy("t2", C, Fraction(100))]) is None
    assert board.exposure()[(A, B, C)] == (Fraction(900), Fraction(100), {"v1": (Fraction(900), Fraction(900))})


def test_reserve_checks_the_clusters_of_now_not_those_the_plan_saw() -> None:
    board = board_with((A, B))
    hold(board, "v1", A=950)
    assert board.limits().global_room == {(A, B): Fraction(50)}  # C in no cluster: not limited engine-wide
    board.publish(dataclasses.replace(board.snapshot, clusters=((A, B, C),)))  # lands between plan and reserve
    assert board.reserve("v2", [Buy("t1", C, Fraction(60))]) == NoRoom((A, B, C), Fraction(60), Fraction(50))
    assert board.exposure()[(A, B, C)][1] == 0  # refused whole: nothing reserved


def test_no_engine_wide_room_until_every_registered_vault_has_published() -> None:
    board = board_with((A, B))
    board.expect(["v1", "v2"])
    hold(board, "v1", A=100)
    limits = board.limits()
    assert limits.global_room == {(A, B): 0} and "1 vault(s) have not published" in limits.global_note
    refused = board.reserve("v1", [Buy("t1", A, Fraction(1))])
    assert refused is not None and refused.unpublished == 1 and "have not published their holdings" in refused.detail
    assert not board.published("v2")
    hold(board, "v2", B=300)  # v2 never trades, but it holds: it counts
    assert board.limits().global_room == {(A, B): Fraction(600)} and board.limits().global_note == ""
    board.expect(["v1", "v3"])  # registering again never un-publishes
    board.forget("v3")  # a registered vault removed before it published: no longer awaited
    assert board.limits().global_room == {(A, B): Fraction(600)}


def test_a_reservation_lasts_until_the_trade_is_final_and_read_back() -> None:
    board = board_with((A, B))
    hold(board, "v1", A=400)
    assert board.reserve("v2", [Buy("t1", A, Fraction(300)), Buy("t2", B, Fraction(200))]) is None
    assert board.reserve("v3", [Buy("t3", B, Fraction(101))]) is not None  # 1001: refused whole
    assert board.limits().global_room == {(A, B): Fraction(100)}
    asked_before = board.tick()  # v2 (restarted) asks for balances while its buys are in flight
    board.settle("t1", confirmed=True)
    board.settle("t2", confirmed=False)  # failed: released at once
    assert board.limits().global_room == {(A, B): Fraction(300)}
    board.hold("v2", {A: Fraction(0)}, Fraction(0), asked_before)  # read before t1 landed: t1 still counts
    assert board.limits().global_room == {(A, B): Fraction(300)}
    hold(board, "v2", A=290)  # read after: t1 is in its holdings now
    assert board.limits().global_room == {(A, B): Fraction(310)}
    assert board.exposure()[(A, B)][1] == 0


def test_forget_drops_a_removed_vaults_stake_and_its_buys_when_final() -> None:
    board = board_with((A, B))
    board.expect(["v1", "v2"])
    hold(board, "v1", A=400)
    hold(board, "v2", B=100)
    assert board.reserve("v1", [Buy("t1", A, Fraction(200))]) is None
    board.forget("v1")  # removed with a buy still in flight: the buy counts until final
    assert board.limits().global_room == {(A, B): Fraction(700)}
    assert list(board.exposure()[(A, B)][2]) == ["v2"]
    board.settle("t1", confirmed=True)  # nobody here will read it back: released
    assert board.limits().global_room == {(A, B): Fraction(900)}


def test_totals_follow_many_vaults_exactly() -> None:
    board = board_with((A, B), (C,))
    for i in range(200):
        hold(board, f"v{i}", A=1, B=2, C=3)
    for i in range(0, 200, 2):
        hold(board, f"v{i}", A=0, B=1)  # sold some
    assert board.limits().global_room == {(A, B): Fraction(1000 - 100 * 3 - 100 * 1), (C,): Fraction(1000 - 300)}


def test_without_an_engine_wide_cap_nothing_waits() -> None:
    board = ExposureBoard(CorrelationSettings())
    board.publish(dataclasses.replace(board.snapshot, clusters=((A, B),)))
    board.expect(["v1"])
    assert not board.wants_holdings and board.limits().global_room == {}
    assert board.reserve("v2", [Buy("t1", A, Fraction(10**9))]) is None
