"""The pykka internals the runtime relies on (pykka is pinned to 4.5.0).

``supervisors`` keeps pykka's API but replaces its inbox, loop, futures, ask and registry, so it
leans on a few private details of pykka. If a pykka upgrade changes one, this test fails and
names every broken assumption, before the runtime misbehaves in some subtler way.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from importlib.metadata import version

import pykka
import pykka._envelope
import pykka.messages
from pykka import ActorRef

import supervisors._actor as sv_actor

PINNED = "4.5.0"

#: The attributes ``Actor.__init__`` sets itself instead of calling pykka's constructor.
BYPASSED_INIT = {"actor_urn", "actor_inbox", "actor_stopped", "_actor_ref"}


def _envelope_fields() -> bool:
    envelope = pykka._envelope.Envelope("m")  # noqa: SLF001
    replied = pykka._envelope.Envelope("m", reply_to=sv_actor.Future())  # noqa: SLF001
    return envelope.message == "m" and envelope.reply_to is None and replied.reply_to is not None


def _actor_stop_is_routed_to_stop() -> bool:
    # pykka's _handle_receive turns _ActorStop into self._stop(), which the runtime overrides.
    source = inspect.getsource(pykka.Actor._handle_receive)  # noqa: SLF001
    return "_ActorStop" in source and "self._stop()" in source


def _future_base_sets_only_the_get_hook() -> bool:
    # supervisors.Future skips pykka.Future.__init__ and stands in for these two with class defaults.
    future: pykka.Future[int] = pykka.Future()
    return set(vars(future)) == {"_get_hook", "_get_hook_result"} and future._get_hook is None  # noqa: SLF001


def _future_combinators_use_the_get_hook() -> bool:
    # map/filter/join/reduce make ``self.__class__()`` and give it a get hook (supervisors.Future
    # implements set_get_hook and runs the hook from get).
    return all(
        "self.__class__()" in inspect.getsource(method) and "set_get_hook" in inspect.getsource(method)
        for method in (pykka.Future.map, pykka.Future.filter, pykka.Future.join, pykka.Future.reduce)
    )


def _constructor_sets_only_what_the_runtime_sets() -> bool:
    actor = pykka.ThreadingActor()  # built, never started
    return set(vars(actor)) == BYPASSED_INIT


def _actor_ref_reads_the_private_ref() -> bool:
    actor = pykka.ThreadingActor()
    return actor.actor_ref is actor._actor_ref  # noqa: SLF001


def _ref_copies_what_the_runtime_provides() -> bool:
    ref = ActorRef(pykka.ThreadingActor())
    return {"_actor_weakref", "actor_class", "actor_urn", "actor_inbox", "actor_stopped"} == set(vars(ref))


def _ref_liveness_is_the_stopped_flag() -> bool:
    return "self.actor_stopped.is_set()" in inspect.getsource(ActorRef.is_alive)


def _proxies_ask_through_the_ref() -> bool:
    # Proxy calls and attribute reads go through ActorRef.ask, which supervisors.Ref overrides.
    source = inspect.getsource(pykka._proxy)  # noqa: SLF001
    return "self.actor_ref.ask(message, block=False)" in source and "_create_future" not in source


def _start_registers_in_pykkas_registry() -> bool:
    # The runtime overrides start() to skip pykka's registry (O(n) unregister, stop_all on a
    # BaseException); _stop and _handle_failure, overridden too, are where pykka unregisters.
    start = inspect.getsource(pykka.Actor.start)
    return (
        "ActorRegistry.register" in start
        and "_start_actor_loop" in start
        and "ActorRegistry.unregister" in inspect.getsource(pykka.Actor._stop)  # noqa: SLF001
        and "ActorRegistry.unregister" in inspect.getsource(pykka.Actor._handle_failure)  # noqa: SLF001
    )


def _hooks_exist() -> bool:
    return all(
        callable(getattr(pykka.Actor, name, None))
        for name in ("_create_actor_inbox", "_create_future", "_start_actor_loop", "_handle_receive", "_stop")
    )


def _proxy_reaches_the_actor_through_the_weakref() -> bool:
    return "_actor_weakref()" in inspect.getsource(pykka.ActorProxy.__init__)


def _proxy_messages_handled_by_handle_receive() -> bool:
    source = inspect.getsource(pykka.Actor._handle_receive)  # noqa: SLF001
    return all(name in source for name in ("ProxyCall", "ProxyGetAttr", "ProxySetAttr"))


def _runtime_overrides_what_it_bypasses() -> bool:
    actor_cls = sv_actor.Actor
    return all(
        name in vars(actor_cls)
        for name in ("__init__", "start", "_stop", "_handle_failure", "_create_future", "_start_actor_loop")
    ) and all(name in vars(sv_actor.Ref) for name in ("tell", "ask", "stop"))


ASSUMPTIONS: dict[str, Callable[[], bool]] = {
    f"pykka is the pinned {PINNED} (re-check every assumption below before moving the pin)": (
        lambda: version("pykka") == PINNED
    ),
    "pykka._envelope.Envelope(message, reply_to=None) exists with .message and .reply_to": _envelope_fields,
    "pykka.messages._ActorStop is the stop message and pykka.Actor._handle_receive routes it to self._stop()": (
        _actor_stop_is_routed_to_stop
    ),
    "pykka.Future.__init__ sets only _get_hook (None) and _get_hook_result": _future_base_sets_only_the_get_hook,
    "pykka.Future.map/filter/join/reduce build self.__class__() with a get hook": (
        _future_combinators_use_the_get_hook
    ),
    f"pykka.Actor.__init__ sets exactly {sorted(BYPASSED_INIT)} (supervisors.Actor sets them itself)": (
        _constructor_sets_only_what_the_runtime_sets
    ),
    "pykka.Actor.actor_ref returns self._actor_ref": _actor_ref_reads_the_private_ref,
    "ActorRef.__init__ copies actor_class, actor_urn, actor_inbox, actor_stopped and a _actor_weakref": (
        _ref_copies_what_the_runtime_provides
    ),
    "ActorRef.is_alive() is `not actor_stopped.is_set()` (the runtime's Flag stands in for the Event)": (
        _ref_liveness_is_the_stopped_flag
    ),
    "pykka's proxies ask through ActorRef.ask(message, block=False), never a future of their own": (
        _proxies_ask_through_the_ref
    ),
    "pykka.Actor.start registers in ActorRegistry and _stop/_handle_failure unregister (all bypassed)": (
        _start_registers_in_pykkas_registry
    ),
    "pykka.Actor has the hooks _create_actor_inbox, _create_future, _start_actor_loop, _handle_receive, _stop": (
        _hooks_exist
    ),
    "ActorProxy reaches the actor through ActorRef._actor_weakref()": _proxy_reaches_the_actor_through_the_weakref,
    "pykka.Actor._handle_receive handles ProxyCall, ProxyGetAttr and ProxySetAttr (proxies work)": (
        _proxy_messages_handled_by_handle_receive
    ),
    "supervisors.Actor/Ref still override every pykka method whose internals they bypass": (
        _runtime_overrides_what_it_bypasses
    ),
}


def test_the_pykka_internals_the_runtime_relies_on_still_hold() -> None:
    broken = []
    for assumption, check in ASSUMPTIONS.items():
        try:
            held = check()
        except Exception as exc:  # noqa: BLE001 - a missing name is a broken assumption too
            held = False
            assumption = f"{assumption} ({type(exc).__name__}: {exc})"
        if not held:
            broken.append(assumption)
    assert not broken, f"pykka {version('pykka')} broke what supervisors relies on:\n- " + "\n- ".join(broken)
