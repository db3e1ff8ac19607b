"""The public introspection and tree API: actor snapshots, published status, restart_child, which_children."""

from __future__ import annotations

import dataclasses

import pytest

from supervisors import (
    Actor,
    ActorInfo,
    ActorState,
    ChildSpec,
    Message,
    Runtime,
    Supervisor,
    WhichChildren,
)
from tests.helpers import wait_until


class Level(Message):
    value: int


class Echo(Actor):
    """Answers with its message; publishes a Level when told an int."""

    def on_receive(self, message: object) -> object:
        if isinstance(message, int):
            self.publish_status(Level(message))
        if message == "publish a list":
            self.publish_status([1])  # type: ignore[arg-type]
        return message


def echo_spec(cid: str) -> ChildSpec:
    return ChildSpec(id=cid, start=Echo.start, shutdown_timeout=0.5)


def test_a_snapshot_is_an_immutable_value_of_one_live_actor(runtime: Runtime) -> None:
    ref = Echo.start()
    assert ref.ask("hello") == "hello"
    info = runtime.actor_info(ref)
    assert isinstance(info, ActorInfo)
    assert (info.urn, info.name, info.actor_class, info.parent) == (ref.actor_urn, "Echo", Echo, None)
    assert info.state is ActorState.IDLE and info.alive
    assert (info.mailbox_depth, info.processed, info.restarts, info.last_message) == (0, 1, 0, "str")
    assert info.ref == ref and info.status is None and info.stack is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "other"  # type: ignore[misc]
    assert runtime.actor_info(ref.actor_urn) == info  # by urn too
    assert runtime.actors() == [info]
    ref.stop(timeout=2)
    assert runtime.actor_info(ref) is None, "only live actors are shown"
    assert runtime.actors() == []


def test_as_dict_is_the_debug_socket_shape(runtime: Runtime) -> None:
    ref = Echo.start()
    ref.ask("x")
    info = runtime.actor_info(ref, stack=True)
    assert list(info.as_dict()) == [
        "urn", "name", "class", "parent", "state", "mailbox", "capacity", "restarts", "processed",
        "last_message", "last_message_at", "started_at", "exit_reason", "dedicated_thread",
    ]
    assert info.as_dict()["class"] == "Echo" and info.as_dict()["state"] == "idle"
    assert info.as_dict(stack=True)["stack"] is None, "not running: no stack, but the entry is there"


def test_an_actor_publishes_a_status_others_read_without_a_message(runtime: Runtime) -> None:
    ref = Echo.start()
    ref.ask(7)
    assert runtime.actor_info(ref).status == Level(7)
    with pytest.raises(TypeError, match="immutable Message"):
        ref.ask("publish a list")
    assert runtime.actor_info(ref).status == Level(7), "a mutable value is refused, the last status stays"


def test_supervisor_which_children_and_restart_child(runtime: Runtime) -> None:
    sup = Supervisor.start([echo_spec("a"), echo_spec("b")], name="group")
    wait_until(lambda: all(c.alive for c in sup.ask(WhichChildren(), timeout=2)), what="children alive")
    assert runtime.supervisor("group") == sup
    assert runtime.supervisor("a") is None, "a child is not a supervisor"
    by_name = runtime.which_children("group")
    assert by_name == runtime.which_children(sup)
    assert [c.id for c in by_name] == ["a", "b"]
    a = runtime.lookup(by_name[0].urn)
    assert runtime.actor_info(a).parent == sup.actor_urn
    assert runtime.restart_child(a, "silent") is True
    wait_until(lambda: (c := runtime.which_children(sup)[0]).alive and c.urn != by_name[0].urn, what="a restarted")
    assert runtime.which_children(sup)[0].restarts == 1
    assert runtime.which_children(sup)[1].urn == by_name[1].urn, "one_for_one: b untouched"
    with pytest.raises(LookupError):
        runtime.which_children("nobody")


def test_restart_child_without_a_supervisor_sends_nothing(runtime: Runtime) -> None:
    ref = Echo.start()
    assert runtime.restart_child(ref, "orphan") is False
    assert ref.is_alive()


def test_join_waits_until_the_actor_has_ended(runtime: Runtime) -> None:
    ref = Echo.start()
    ref.stop(block=False)
    assert ref.join(2) is True
    assert runtime.actor_info(ref) is None
