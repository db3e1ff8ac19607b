"""The debug socket's slot rules (xorj_actors.ops._slots), without sockets."""

from __future__ import annotations

from xorj_actors.ops._slots import Admission, Slot, Slots


def test_free_slots_are_taken_first() -> None:
    slots: Slots[str] = Slots(2)
    assert slots.admit("a") == Admission(Slot.GENERAL)
    assert slots.admit("b") == Admission(Slot.GENERAL)
    assert len(slots) == 2


def test_when_full_the_client_idle_the_longest_is_evicted() -> None:
    slots: Slots[str] = Slots(2)
    slots.admit("a")
    slots.admit("b")
    slots.busy("a")
    slots.idle("a")  # a answered after b arrived: b has waited longer
    assert slots.admit("c") == Admission(Slot.GENERAL, evicted="b")
    assert slots.admit("d") == Admission(Slot.GENERAL, evicted="a")
    assert len(slots) == 2


def test_a_client_running_a_command_is_never_evicted() -> None:
    slots: Slots[str] = Slots(2)
    slots.admit("a")
    slots.admit("b")
    slots.busy("a")
    assert slots.admit("c") == Admission(Slot.GENERAL, evicted="b")
    slots.busy("c")
    assert slots.admit("d") == Admission(Slot.RESERVED)
    assert slots.admit("e") == Admission(None)
    slots.release("d")
    assert slots.admit("e") == Admission(Slot.RESERVED)


def test_release_is_idempotent_and_frees_the_slot() -> None:
    slots: Slots[str] = Slots(1)
    slots.admit("a")
    slots.release("a")
    slots.release("a")
    assert slots.admit("b") == Admission(Slot.GENERAL)
    slots.idle("a")  # a released client stays out of line
    slots.busy("b")
    assert slots.admit("c") == Admission(Slot.RESERVED)
