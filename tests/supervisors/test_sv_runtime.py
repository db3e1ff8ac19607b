"""The M:N runtime: mailboxes, priority, bounds, death watch, blocking rules, introspection."""

from __future__ import annotations

import sys
import threading
import time
import uuid

import pytest
from pykka import ActorDeadError, Timeout

from supervisors import (
    Actor,
    BlockingCallInWorker,
    ControlMessage,
    MailboxFull,
    Message,
    Runtime,
    Terminated,
    WorkerKilled,
)
from tests.helpers import Watcher, notes_of, wait_until


class Work(Message):
    n: int


class Urgent(ControlMessage):
    tag: str


class Seen(ControlMessage):
    """Ask a Recorder what it has seen (a control message: a full mailbox cannot refuse it)."""


class Gate:
    """Holds an actor inside a handler: the test sees it enter, then lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def set(self) -> None:
        self.release.set()


class Recorder(Actor):
    """Records every message; can be held inside a handler by a gate. Answers Seen."""

    def __init__(self, gate: Gate | None = None) -> None:
        super().__init__()
        self.seen: list[object] = []
        self.gate = gate

    def on_receive(self, message: object) -> object:
        if isinstance(message, Seen):
            return tuple(self.seen)
        if message == "hold":
            assert self.gate is not None
            self.gate.entered.set()
            self.gate.release.wait(10)
            return None
        if message == "boom":
            raise ValueError("boom")
        if message == "kill-worker":
            raise WorkerKilled("chaos")
        self.seen.append(message)
        return ("ok", message)


def seen(ref) -> tuple[object, ...]:
    """What the Recorder behind ``ref`` has seen, asked of it."""
    return ref.ask(Seen(), timeout=5)


def test_ask_and_tell_round_trip(runtime: Runtime) -> None:
    ref = Recorder.start()
    assert ref.ask(Work(1)) == ("ok", Work(1))
    ref.tell(Work(2))
    wait_until(lambda: Work(2) in seen(ref))


def test_control_messages_overtake_queued_work(runtime: Runtime) -> None:
    gate = Gate()
    ref = Recorder.start(gate)
    ref.tell("hold")
    wait_until(gate.entered.is_set)
    for i in range(50):
        ref.tell(Work(i))
    ref.tell(Urgent("halt"))
    gate.set()
    wait_until(lambda: len(seen(ref)) == 51)
    got = seen(ref)
    assert got[0] == Urgent("halt"), "the control message must run before the queued work"
    assert got[1:] == tuple(Work(i) for i in range(50)), "ordinary messages keep their order"


def test_full_mailbox_refuses_the_sender_but_never_a_control_message() -> None:
    rt = Runtime(workers=1, mailbox_capacity=5, name="bounded")
    try:
        gate = Gate()
        ref = Recorder.start(gate)
        ref.tell("hold")
        wait_until(gate.entered.is_set)
        for i in range(5):
            ref.tell(Work(i))
        with pytest.raises(MailboxFull):
            ref.tell(Work(99))
        ref.tell(Urgent("still delivered"))
        gate.set()
        wait_until(lambda: len(seen(ref)) == 6)
        assert Work(99) not in seen(ref)
        assert seen(ref)[0] == Urgent("still delivered")
    finally:
        rt.shutdown()


def test_tell_to_a_dead_actor_raises(runtime: Runtime) -> None:
    ref = Recorder.start()
    assert ref.stop(timeout=2) is True
    with pytest.raises(ActorDeadError):
        ref.tell(Work(1))
    with pytest.raises(ActorDeadError):
        ref.ask(Work(1), timeout=1)


def test_ask_always_times_out(runtime: Runtime) -> None:
    gate = Gate()
    ref = Recorder.start(gate)
    ref.tell("hold")
    with pytest.raises(Timeout):
        ref.ask(Work(1), timeout=0.2)
    gate.set()


def test_exception_in_ask_goes_to_the_caller_and_the_actor_lives(runtime: Runtime) -> None:
    ref = Recorder.start()
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom")
    assert ref.ask(Work(3)) == ("ok", Work(3))


class Asker(Actor):
    def __init__(self, other) -> None:
        super().__init__()
        self.other = other

    def on_receive(self, message: object) -> object:
        return self.other.ask(Work(1), timeout=1)


class DedicatedAsker(Asker):
    dedicated_thread = True


def test_blocking_inside_a_pooled_actor_is_refused(runtime: Runtime) -> None:
    target = Recorder.start()
    asker = Asker.start(target)
    with pytest.raises(BlockingCallInWorker):
        asker.ask("go", timeout=2)
    # On a dedicated thread, blocking is allowed.
    dedicated = DedicatedAsker.start(target)
    assert dedicated.ask("go", timeout=2) == ("ok", Work(1))
    assert runtime.actor_info(dedicated).dedicated_thread is True


@pytest.mark.parametrize(
    ("how", "abnormal", "reason"),
    [
        ("stop", False, "normal"),
        ("fail", True, "ValueError: boom"),
        ("kill", True, "worker died"),
    ],
)
def test_death_watch_sees_every_kind_of_death(runtime: Runtime, how: str, abnormal: bool, reason: str) -> None:
    watcher = Watcher.start()
    target = Recorder.start()
    watcher.proxy().watch_ref(target).get(timeout=2)
    workers_before = len(runtime.scheduler.threads)
    if how == "stop":
        target.stop(timeout=2)
    elif how == "fail":
        target.tell("boom")
    else:
        target.tell("kill-worker")
    wait_until(lambda: notes_of(watcher), what="Terminated")
    (note,) = notes_of(watcher)
    assert note.urn == target.actor_urn
    assert note.abnormal is abnormal
    assert reason in note.reason
    assert not target.is_alive()
    # A killed worker is replaced: the pool keeps its size.
    wait_until(lambda: len(runtime.scheduler.threads) == workers_before, what="worker replacement")
    assert watcher.ask(Work(5), timeout=2) is None  # the pool still runs actors


def test_watching_a_dead_actor_reports_noproc(runtime: Runtime) -> None:
    target = Recorder.start()
    target.stop(timeout=2)
    watcher = Watcher.start()
    watcher.proxy().watch_ref(target).get(timeout=2)
    wait_until(lambda: notes_of(watcher))
    assert notes_of(watcher)[0].reason == "noproc"


def test_introspection_shows_a_running_actor_without_stopping_it(runtime: Runtime) -> None:
    gate = Gate()
    ref = Recorder.start(gate)
    ref.tell("hold")
    wait_until(gate.entered.is_set)
    for i in range(3):
        ref.tell(Work(i))
    snap = runtime.actor_info(ref, stack=True)
    assert snap.state == "running"
    assert snap.mailbox_depth == 3
    assert snap.last_message == "str"
    assert any("on_receive" in line for line in snap.stack), snap.stack
    gate.set()
    wait_until(lambda: runtime.actor_info(ref).state == "idle")
    snap = runtime.actor_info(ref, stack=True)
    assert snap.mailbox_depth == 0 and snap.processed == 4 and snap.stack is None
    assert snap.last_message == "Work"


def test_ten_thousand_actors_on_two_threads(runtime: Runtime) -> None:
    threads_before = len(runtime.threads())
    refs = [Recorder.start() for _ in range(10_000)]
    # Each actor answers its one message: no polling of 10,000 actors from the test thread.
    replies = [ref.ask(Work(i), block=False) for i, ref in enumerate(refs)]
    assert [r.get(timeout=30) for r in replies] == [("ok", Work(i)) for i in range(10_000)], "10k deliveries"
    assert len(runtime.threads()) == threads_before, "actors must not get threads of their own"
    assert len(runtime) == 10_000
    for ref in refs:
        ref.stop(block=False)
    wait_until(lambda: len(runtime) == 0, 30, "10k stops")


def test_message_values_cross_actors_unchanged(runtime: Runtime) -> None:
    ref = Recorder.start()
    msg = Work(7)
    ref.tell(msg)
    wait_until(lambda: seen(ref))
    assert seen(ref)[0] is msg  # shared safely because it cannot change


def test_futures_never_wait_forever(runtime: Runtime) -> None:
    import supervisors._future as future_module

    gate = Gate()
    ref = Recorder.start(gate)
    ref.tell("hold")
    future = ref.proxy().on_receive(Work(1))  # a proxy call: pykka's path to our future
    old = future_module.DEFAULT_TIMEOUT
    future_module.DEFAULT_TIMEOUT = 0.2
    try:
        with pytest.raises(Timeout):
            future.get()  # no timeout given: the default applies
    finally:
        future_module.DEFAULT_TIMEOUT = old
        gate.set()


def test_a_stuck_handler_cannot_freeze_a_one_worker_pool() -> None:
    rt = Runtime(workers=1, max_extra_workers=2, name="stall")
    try:
        gate = Gate()
        stuck = Recorder.start(gate)
        stuck.tell("hold")
        wait_until(gate.entered.is_set)
        other = Recorder.start()
        # The only worker is stuck: after the stall delay the pool is lent another worker.
        assert other.ask(Work(1), timeout=5) == ("ok", Work(1))
        assert rt.scheduler.stalls == 1
        gate.set()
        wait_until(lambda: len(rt.scheduler.threads) == 1, 10, "the extra worker to retire")
    finally:
        rt.shutdown()


class SlowStop(Actor):
    def on_stop(self) -> None:
        time.sleep(0.3)


def test_a_tell_to_an_actor_that_is_stopping_is_refused_not_dropped(runtime: Runtime) -> None:
    ref = SlowStop.start()
    ref.stop(block=False)
    wait_until(lambda: not ref.is_alive(), what="stop under way")
    with pytest.raises(ActorDeadError):
        ref.tell(Work(1))
    assert runtime.broadcast([ref], Urgent("halt")) == [ref], "a broadcast reports it dead"


def test_a_runtime_that_fails_to_start_is_not_left_current(monkeypatch: pytest.MonkeyPatch) -> None:
    import supervisors._runtime as runtime_module

    before, interval = set(threading.enumerate()), sys.getswitchinterval()
    with pytest.raises(ValueError):
        Runtime(workers=0)  # the pool refuses: nothing was started
    with pytest.raises(RuntimeError, match="no Runtime"):
        Runtime.current()

    def no_timer(name: str) -> None:
        raise OSError("cannot start a thread")

    monkeypatch.setattr(runtime_module, "Timer", no_timer)
    with pytest.raises(OSError):
        Runtime(workers=2, name="half")  # the pool had started: its workers are stopped again
    with pytest.raises(RuntimeError, match="no Runtime"):
        Runtime.current()
    wait_until(lambda: not (set(threading.enumerate()) - before), 10, "the half-made runtime's threads to exit")
    assert sys.getswitchinterval() == interval
    monkeypatch.undo()
    Runtime(name="after").shutdown()  # and the next runtime starts


def test_the_switch_interval_is_short_while_a_runtime_is_current() -> None:
    before = sys.getswitchinterval()
    rt = Runtime(name="switch")
    try:
        assert sys.getswitchinterval() == pytest.approx(0.0005)
        with pytest.raises(RuntimeError, match="another Runtime"):
            Runtime(name="second")
        assert Runtime.current() is rt
    finally:
        rt.shutdown()
    assert sys.getswitchinterval() == pytest.approx(before)
    with Runtime(name="as-is", switch_interval=None):
        assert sys.getswitchinterval() == pytest.approx(before)


def test_actor_urns_are_unique_uuid_urns(runtime: Runtime) -> None:
    refs = [Recorder.start() for _ in range(100)]
    urns = [ref.actor_urn for ref in refs]
    assert len(set(urns)) == 100
    assert all(urn.startswith("urn:uuid:") and uuid.UUID(urn).version == 4 for urn in urns)
    for ref in refs:
        ref.stop(block=False)


def test_an_idle_actor_holds_no_queue_of_its_own(runtime: Runtime) -> None:
    from supervisors._mailbox import NO_LANE

    gate = Gate()
    ref = Recorder.start(gate)
    mailbox = ref.actor_inbox
    ref.tell("hold")
    wait_until(gate.entered.is_set)
    ref.tell(Work(1))
    ref.tell(Urgent("u"))
    assert len(mailbox) == 2 and mailbox._work is not NO_LANE and mailbox._control is not NO_LANE
    gate.set()
    wait_until(lambda: seen(ref) == (Urgent("u"), Work(1)), what="both handled, the urgent one first")
    wait_until(lambda: mailbox._work is NO_LANE and mailbox._control is NO_LANE, what="lanes dropped once drained")
    ref.tell(Work(2))  # and a lane is made again for the next message
    wait_until(lambda: seen(ref)[-1] == Work(2), what="the next message handled")
    ref.stop(timeout=5)
    assert mailbox._work is NO_LANE and mailbox._control is NO_LANE
