"""Supervisor semantics: strategies, restart types, intensity, ordered shutdown, abandonment."""

from __future__ import annotations

import threading

import pytest

from supervisors import (
    Actor,
    ChildSpec,
    Restart,
    RestartChild,
    Runtime,
    StartChild,
    StartChildren,
    Strategy,
    Supervisor,
    TerminateChild,
    Terminated,
    WhichChildren,
)
from tests.helpers import Watcher, notes_of, wait_until

EVENTS: list[tuple[str, str]] = []
EVENTS_LOCK = threading.Lock()


def log(event: str, who: str) -> None:
    with EVENTS_LOCK:
        EVENTS.append((event, who))


@pytest.fixture(autouse=True)
def clear_events():
    EVENTS.clear()
    yield


class Child(Actor):
    def __init__(self, name: str, stuck: threading.Event | None = None) -> None:
        super().__init__()
        self.name = name
        self.stuck = stuck

    def on_start(self) -> None:
        log("start", self.name)

    def on_stop(self) -> None:
        log("stop", self.name)

    def on_receive(self, message: object) -> object:
        if message == "boom":
            raise RuntimeError(f"{self.name} crashed")
        if message == "hang":
            log("hang", self.name)
            assert self.stuck is not None
            self.stuck.wait(30)
        if message == "quit":
            self.stop()
        return self.name


def spec(name: str, restart: Restart = Restart.PERMANENT, **kw) -> ChildSpec:
    return ChildSpec(id=name, start=lambda: Child.start(name, **kw), restart=restart, shutdown_timeout=0.5)


def children(sup) -> dict[str, object]:
    return {c.id: c for c in sup.ask(WhichChildren(), timeout=2)}


def child_ref(runtime: Runtime, sup, cid: str):
    info = children(sup)[cid]
    return runtime.lookup(info.urn) if info.urn else None


def wait_alive(runtime: Runtime, sup, ids) -> dict[str, str]:
    def ready():
        info = children(sup)
        return all(info[i].alive for i in ids)

    wait_until(ready, what=f"children {ids} alive")
    return {cid: c.urn for cid, c in children(sup).items()}


def start_sup(strategy: Strategy, names=("a", "b", "c"), **kw):
    return Supervisor.start([spec(n) for n in names], strategy=strategy, **kw)


def test_children_start_in_order_and_stop_in_reverse(runtime: Runtime) -> None:
    sup = start_sup(Strategy.ONE_FOR_ONE)
    wait_alive(runtime, sup, "abc")
    wait_until(lambda: len(EVENTS) == 3)
    assert EVENTS == [("start", "a"), ("start", "b"), ("start", "c")]
    assert sup.stop(timeout=5)
    assert EVENTS[3:] == [("stop", "c"), ("stop", "b"), ("stop", "a")]


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, {"b"}),
        (Strategy.ONE_FOR_ALL, {"a", "b", "c"}),
        (Strategy.REST_FOR_ONE, {"b", "c"}),
    ],
)
def test_strategies_restart_the_right_children(runtime: Runtime, strategy: Strategy, restarted: set[str]) -> None:
    sup = start_sup(strategy)
    before = wait_alive(runtime, sup, "abc")
    EVENTS.clear()
    child_ref(runtime, sup, "b").tell("boom")

    def settled():
        now = children(sup)
        return all(now[c].alive and (now[c].urn != before[c]) == (c in restarted) for c in "abc")

    wait_until(settled, what="restart")
    after = {cid: c for cid, c in children(sup).items()}
    for cid in "abc":
        assert (after[cid].urn != before[cid]) == (cid in restarted), cid
        assert after[cid].restarts == (1 if cid in restarted else 0)
    # The others were stopped in reverse start order, then all restarted in start order.
    stops = [w for e, w in EVENTS if e == "stop"]
    starts = [w for e, w in EVENTS if e == "start"]
    assert stops == sorted(restarted - {"b"}, reverse=True)
    assert starts == sorted(restarted)


@pytest.mark.parametrize(
    ("restart", "how", "expect_restart"),
    [
        (Restart.PERMANENT, "quit", True),
        (Restart.PERMANENT, "boom", True),
        (Restart.TRANSIENT, "quit", False),
        (Restart.TRANSIENT, "boom", True),
        (Restart.TEMPORARY, "boom", False),
        (Restart.TEMPORARY, "quit", False),
    ],
)
def test_restart_types(runtime: Runtime, restart: Restart, how: str, expect_restart: bool) -> None:
    sup = Supervisor.start([spec("x", restart)])
    (urn,) = wait_alive(runtime, sup, "x").values()
    runtime.lookup(urn).tell(how)
    if expect_restart:
        wait_until(lambda: children(sup).get("x") and children(sup)["x"].alive and children(sup)["x"].urn != urn)
    else:
        wait_until(lambda: "x" not in children(sup), what="child removed")


def test_restart_intensity_escalates_to_the_parent(runtime: Runtime) -> None:
    parent = Watcher.start()
    sup = start_sup(Strategy.ONE_FOR_ONE, max_restarts=2, period=10)
    parent.proxy().watch_ref(sup).get(timeout=2)
    for i in range(3):
        urns = wait_alive(runtime, sup, "abc")
        runtime.lookup(urns["a"]).tell("boom")
        if i < 2:
            wait_until(lambda: children(sup)["a"].urn != urns["a"] and children(sup)["a"].alive)
    wait_until(lambda: notes_of(parent), what="supervisor escalation")
    notes = notes_of(parent)
    assert notes[0].abnormal and "restart intensity" in notes[0].reason
    assert not sup.is_alive()
    # Every child was stopped before the supervisor gave up: nothing orphaned.
    assert [a.urn for a in runtime.actors()] == [parent.actor_urn]


def test_restarts_outside_the_period_do_not_escalate(runtime: Runtime) -> None:
    sup = start_sup(Strategy.ONE_FOR_ONE, names=("a",), max_restarts=1, period=0.2)
    for _ in range(3):
        urns = wait_alive(runtime, sup, "a")
        runtime.lookup(urns["a"]).tell("boom")
        wait_until(lambda: children(sup)["a"].urn != urns["a"] and children(sup)["a"].alive)
        threading.Event().wait(0.25)
    assert sup.is_alive()


def test_a_child_that_will_not_stop_is_abandoned_and_reported(runtime: Runtime) -> None:
    stuck = threading.Event()
    sup = Supervisor.start(
        [spec("a"), ChildSpec("hung", lambda: Child.start("hung", stuck), shutdown_timeout=0.3)],
    )
    urns = wait_alive(runtime, sup, ["a", "hung"])
    watcher = Watcher.start()
    watcher.proxy().watch_ref(runtime.lookup(urns["hung"])).get(timeout=2)
    runtime.lookup(urns["hung"]).tell("hang")
    wait_until(lambda: ("hang", "hung") in EVENTS)
    assert sup.stop(timeout=5)
    # Reported to whoever watches it: abandoned, by its child id.
    (note,) = notes_of(watcher)
    assert note.name == "hung" and note.reason.startswith("abandoned") and note.abnormal
    assert ("stop", "a") in EVENTS
    stuck.set()  # let the worker go; the abandoned actor does nothing more
    watcher.stop(timeout=2)
    wait_until(lambda: len(runtime) == 0, what="everything gone")


def test_many_children_start_in_one_message_and_one_failure_stops_none_of_the_others(runtime: Runtime) -> None:
    sup = Supervisor.start([], strategy=Strategy.ONE_FOR_ONE)
    sup.ask(StartChild(spec("v1")), timeout=2)

    def cannot_start() -> ChildSpec:
        raise RuntimeError("no key for it")

    answers = sup.ask(StartChildren((spec("v2"), spec("v1"), ChildSpec("v3", cannot_start), spec("v4"))), timeout=2)
    assert answers[0] is None and answers[3] is None
    assert "already in use" in answers[1] and "failed to start" in answers[2] and "no key for it" in answers[2]
    assert sorted(children(sup)) == ["v1", "v2", "v4"] and all(c.alive for c in children(sup).values())
    assert children(sup)["v4"].urn is not None and runtime.lookup(children(sup)["v4"].urn).ask("who", timeout=2) == "v4"


def test_dynamic_children_and_restart_on_request(runtime: Runtime) -> None:
    sup = Supervisor.start([], strategy=Strategy.ONE_FOR_ONE)
    ref = sup.ask(StartChild(spec("v1")), timeout=2)
    assert ref.ask("who", timeout=2) == "v1"
    with pytest.raises(ValueError, match="already in use"):
        sup.ask(StartChild(spec("v1")), timeout=2)
    old = children(sup)["v1"].urn
    sup.tell(RestartChild("v1", "did not ack the halt"))
    wait_until(lambda: children(sup)["v1"].urn != old and children(sup)["v1"].alive)
    assert children(sup)["v1"].restarts == 1
    sup.ask(TerminateChild("v1"), timeout=2)
    wait_until(lambda: len(runtime) == 1)
    assert children(sup) == {}


def test_nested_supervisors_form_a_tree(runtime: Runtime) -> None:
    inner = ChildSpec("inner", lambda: Supervisor.start([spec("leaf")], name="inner"))
    root = Supervisor.start([inner, spec("sibling")], strategy=Strategy.ONE_FOR_ONE, name="root")
    wait_alive(runtime, root, ["inner", "sibling"])
    wait_until(lambda: len(runtime) == 4)
    by_name = {a.name: a for a in runtime.actors()}
    assert by_name["leaf"].parent == by_name["inner"].urn
    assert by_name["inner"].parent == by_name["root"].urn
    # Stopping the inner supervisor takes its child with it; the root rebuilds both (permanent).
    leaf_urn = by_name["leaf"].urn
    inner_ref = runtime.lookup(by_name["inner"].urn)
    inner_ref.tell(Terminated(urn="not-a-child", name="x", reason="ignored", abnormal=True))
    inner_ref.stop(timeout=2)
    wait_until(lambda: {a.name for a in runtime.actors()} == {"root", "inner", "leaf", "sibling"}
               and all(a.urn != leaf_urn for a in runtime.actors()), what="subtree rebuilt")


# -- regressions found by review (each failed before its fix) -------------------------------------


class Stuck(Actor):
    dedicated_thread = True  # stuck in a handler without holding the shared pool
    gate: threading.Event = threading.Event()

    def on_stop(self) -> None:
        log("stop", self.actor_inbox.name)

    def on_receive(self, message: object) -> object:
        if message == "hang":
            self.gate.wait(10)
        return None


def test_two_restart_requests_in_a_row_replace_both_stuck_children(runtime: Runtime) -> None:
    Stuck.gate.clear()
    sup = Supervisor.start([ChildSpec(c, Stuck.start, shutdown_timeout=0.3) for c in "ab"], max_restarts=10)
    before = wait_alive(runtime, sup, "ab")
    watcher = Watcher.start()
    for urn in before.values():
        watcher.proxy().watch_ref(runtime.lookup(urn)).get(timeout=2)
        runtime.lookup(urn).tell("hang")
    # Both must really be stuck in the handler before the restarts (a loaded machine may not
    # have run "hang" yet, and a child that stops in time is not abandoned).
    def stuck(urn: str) -> bool:
        info = runtime.actor_info(urn)
        return info is not None and info.state == "running"

    wait_until(lambda: all(stuck(urn) for urn in before.values()), what="both children stuck")
    sup.tell(RestartChild("a", "did not ack the halt"))
    sup.tell(RestartChild("b", "did not ack the halt"))  # must not replace the first restart
    try:
        wait_until(lambda: all(c.alive and c.urn != before[c.id] for c in sup.ask(WhichChildren(), timeout=2)),
                   what="both stuck children replaced")
        assert sorted(n.name for n in notes_of(watcher) if n.reason.startswith("abandoned")) == ["a", "b"]
        assert {c.id: c.restarts for c in sup.ask(WhichChildren(), timeout=2)} == {"a": 1, "b": 1}
    finally:
        Stuck.gate.set()


def test_a_restart_request_during_a_stop_does_not_cancel_the_stop(runtime: Runtime) -> None:
    sup = start_sup(Strategy.ONE_FOR_ONE)
    wait_alive(runtime, sup, "abc")
    sup.stop(block=False)
    sup.tell(RestartChild("b", "late"))
    wait_until(lambda: len(runtime) == 0, what="supervisor and children stopped")


def test_a_stop_during_a_restart_stops_every_child_before_the_supervisor(runtime: Runtime) -> None:
    stuck = threading.Event()
    sup = Supervisor.start([spec("a"), ChildSpec("b", lambda: Child.start("b", stuck), shutdown_timeout=0.5), spec("c")])
    parent = Watcher.start()
    parent.proxy().watch_ref(sup).get(timeout=2)
    urns = wait_alive(runtime, sup, "abc")
    runtime.lookup(urns["b"]).tell("hang")
    wait_until(lambda: ("hang", "b") in EVENTS)
    sup.tell(RestartChild("b", "silent"))
    sup.stop(block=False)
    wait_until(lambda: notes_of(parent), what="supervisor ended")
    stuck.set()
    assert ("stop", "a") in EVENTS and ("stop", "c") in EVENTS, "no child may outlive its supervisor"
    assert [a.urn for a in runtime.actors()] == [parent.actor_urn]


def test_terminating_a_child_that_just_died_does_not_crash_the_supervisor(runtime: Runtime) -> None:
    sup = Supervisor.start([spec("a", Restart.TRANSIENT), spec("b")])
    urns = wait_alive(runtime, sup, "ab")
    runtime.lookup(urns["a"]).tell("quit")
    sup.tell(TerminateChild("a"))
    wait_until(lambda: "a" not in children(sup))
    assert sup.is_alive() and children(sup)["b"].alive


def test_a_bad_request_told_to_a_supervisor_is_refused_and_it_lives(runtime: Runtime) -> None:
    sup = Supervisor.start([spec("a")])
    wait_alive(runtime, sup, "a")
    sup.tell(TerminateChild("nobody"))
    sup.tell(RestartChild("nobody", "typo"))
    sup.tell(StartChild(spec("a")))  # id in use
    assert sup.is_alive() and set(children(sup)) == {"a"}
    with pytest.raises(KeyError):
        sup.ask(TerminateChild("nobody"), timeout=2)  # an ask still gets the error


# -- restart types under group strategies (OTP semantics) -----------------------------------------


@pytest.mark.parametrize(
    ("strategy", "order"),
    [(Strategy.ONE_FOR_ALL, ("a", "t", "b")), (Strategy.REST_FOR_ONE, ("a", "b", "t"))],
)
def test_a_temporary_sibling_stopped_by_a_group_restart_is_not_started_again(
    runtime: Runtime, strategy: Strategy, order: tuple[str, ...]
) -> None:
    # OTP: a temporary child is never restarted, even when the strategy stops it because a sibling
    # died; it is removed from the supervisor.
    restart = {"a": Restart.PERMANENT, "t": Restart.TEMPORARY, "b": Restart.PERMANENT}
    sup = Supervisor.start([spec(c, restart[c]) for c in order], strategy=strategy)
    before = wait_alive(runtime, sup, order)
    EVENTS.clear()
    runtime.lookup(before["b"]).tell("boom")
    wait_until(lambda: "t" not in children(sup), what="the temporary child removed")
    restarted = {"a", "b"} if strategy is Strategy.ONE_FOR_ALL else {"b"}
    wait_until(lambda: all(children(sup)[c].alive and children(sup)[c].urn != before[c] for c in restarted),
               what="the permanent children restarted")
    assert list(children(sup)) == [c for c in order if c != "t"]
    assert ("stop", "t") in EVENTS, "it was stopped with its siblings"
    assert ("start", "t") not in EVENTS, "and never started again"


def test_a_transient_sibling_stopped_by_a_group_restart_is_started_again(runtime: Runtime) -> None:
    # OTP: the supervisor stopped it (exit reason shutdown), but it is restarted with the group.
    sup = Supervisor.start([spec("a"), spec("tr", Restart.TRANSIENT), spec("b")], strategy=Strategy.ONE_FOR_ALL)
    before = wait_alive(runtime, sup, ["a", "tr", "b"])
    runtime.lookup(before["b"]).tell("boom")
    wait_until(lambda: all(c.alive and c.urn != before[c.id] for c in children(sup).values()),
               what="the whole group restarted")
    assert list(children(sup)) == ["a", "tr", "b"]
    assert children(sup)["tr"].restarts == 1
