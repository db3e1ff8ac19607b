"""Immutable message values.

Every message class derives from :class:`Message`. Its annotated fields become a frozen, slotted
dataclass, and every field type is checked when the class is *defined*: only immutable types are
accepted, all the way down (``tuple[...]``, ``frozenset[...]``, ``Decimal``, enums, other
messages...). Values are checked again when an instance is created, so a ``list`` passed where a
``tuple`` is declared fails at once instead of leaking shared mutable state between actors.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import fractions
import types
import typing
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

__all__ = ["ControlMessage", "Message", "MessageDefinitionError", "register_immutable_type"]

_SCALARS: set[type] = {
    int,
    float,
    bool,
    str,
    bytes,
    Decimal,
    fractions.Fraction,
    complex,
    type(None),
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.timezone,
    uuid.UUID,
    range,
}


class MessageDefinitionError(TypeError):
    """A message class declares a field whose type is not immutable."""


def register_immutable_type(tp: type) -> type:
    """Declare a foreign type immutable so message fields may use it (e.g. a public key type).

    Only register types whose instances really cannot change after construction.
    """
    _SCALARS.add(tp)
    _REGISTERED.add(tp)
    return tp


#: Types declared immutable by users of the library: their subclasses are accepted too (an
#: ``ActorRef`` field takes the runtime's ``Ref``).
_REGISTERED: set[type] = set()


Check = Callable[[Any], bool]


def _never(_: Any) -> bool:
    return False


def _compile(tp: Any, where: str) -> tuple[frozenset[type], Check]:
    """Compile ``tp`` into (exact types accepted at once, predicate for the other values).

    The exact-type set is the fast path of every message construction; the predicate handles
    containers and subclasses.
    """
    if tp is Any or tp is object:
        raise MessageDefinitionError(f"{where}: {tp!r} admits mutable values; name an immutable type")
    origin = typing.get_origin(tp)
    if origin is None:
        if isinstance(tp, type):
            if tp in _REGISTERED:
                registered = tp
                return frozenset({tp}), lambda v: isinstance(v, registered)
            if tp in _SCALARS:
                return (frozenset({tp, int}) if tp is float else frozenset({tp})), _never
            if issubclass(tp, enum.Enum):
                return frozenset({tp}), _never
            if issubclass(tp, Message) or any(
                issubclass(tp, s) for s in _SCALARS if s is not type(None)
            ):
                base = tp
                return frozenset({tp}), lambda v: isinstance(v, base)
        raise MessageDefinitionError(
            f"{where}: type {getattr(tp, '__name__', tp)!s} is not immutable "
            "(use tuple, frozenset, Decimal, an enum, a Message, or register_immutable_type)"
        )
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [_compile(a, where) for a in args]
        fast = frozenset().union(*(p[0] for p in parts))
        slow = [p[1] for p in parts if p[1] is not _never]
        if not slow:
            return fast, _never
        return fast, lambda v: any(c(v) for c in slow)
    if origin is typing.Literal:
        allowed = frozenset(args)
        return frozenset(), lambda v: v in allowed
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item_fast, item_slow = _compile(args[0], where)
            return frozenset(), lambda v: type(v) is tuple and all(
                type(x) in item_fast or item_slow(x) for x in v
            )
        if args == ((),):
            return frozenset(), lambda v: v == ()
        items = [_compile(a, where) for a in args]
        n = len(items)
        return frozenset(), lambda v: type(v) is tuple and len(v) == n and all(
            type(x) in f or c(x) for (f, c), x in zip(items, v)
        )
    if origin is frozenset:
        if not args:
            raise MessageDefinitionError(f"{where}: frozenset needs an item type")
        item_fast, item_slow = _compile(args[0], where)
        return frozenset(), lambda v: type(v) is frozenset and all(
            type(x) in item_fast or item_slow(x) for x in v
        )
    raise MessageDefinitionError(
        f"{where}: {getattr(origin, '__name__', origin)} is mutable or not supported in messages "
        "(use tuple or frozenset)"
    )


def _reject(cls: type, name: str, value: Any) -> None:
    raise TypeError(
        f"{cls.__name__}.{name}: {type(value).__name__} value {value!r:.80} "
        "is not of the declared immutable type"
    )


def _checked_init(cls: type) -> Callable[..., None]:
    """Generate ``__init__``: check each value's type inline, then set it (messages are hot)."""
    fields = dataclasses.fields(cls)
    env: dict[str, Any] = {"_set": object.__setattr__, "_reject": _reject, "_cls": cls}
    params, body = [], []
    for i, (f, (_, fast, slow)) in enumerate(zip(fields, cls._field_checks)):  # type: ignore[attr-defined]
        env[f"_f{i}"], env[f"_s{i}"] = fast, slow
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            env[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
        body.append(f" if type({f.name}) not in _f{i} and not _s{i}({f.name}): _reject(_cls, {f.name!r}, {f.name})")
        body.append(f" _set(self, {f.name!r}, {f.name})")
    src = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or " pass") + "\n"
    exec(src, env)  # noqa: S102 - generated from the class's own field names
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


class _MessageMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any) -> type:
        if "__dataclass_fields__" in ns or ns.get("_abstract_message", False):
            # Either the base classes, or dataclass(slots=True) rebuilding the class below.
            return super().__new__(mcs, name, bases, ns, **kw)
        plain = super().__new__(mcs, name, bases, ns, **kw)
        try:
            cls = dataclasses.dataclass(frozen=True, eq=True, repr=True, slots=True)(plain)
        except (TypeError, ValueError) as exc:  # e.g. a mutable default value
            raise MessageDefinitionError(f"{name}: {exc}") from None
        try:
            hints = typing.get_type_hints(cls)
        except NameError as exc:
            raise MessageDefinitionError(
                f"{name}: cannot resolve a field type ({exc}); define it before the message"
            ) from None
        cls._field_checks = tuple(  # type: ignore[attr-defined]
            (f.name, *_compile(hints[f.name], f"{name}.{f.name}")) for f in dataclasses.fields(cls)
        )
        for (_, fast, slow), f in zip(cls._field_checks, dataclasses.fields(cls)):  # type: ignore[attr-defined]
            if f.default is not dataclasses.MISSING:
                if not (type(f.default) in fast or slow(f.default)):
                    raise MessageDefinitionError(f"{name}.{f.name}: default {f.default!r} is not immutable")
            elif f.default_factory is not dataclasses.MISSING:
                raise MessageDefinitionError(f"{name}.{f.name}: default_factory is not allowed; use a value")
        cls.__init__ = _checked_init(cls)  # type: ignore[misc]
        return cls


class Message(metaclass=_MessageMeta):
    """Base of every message: a frozen, slotted value whose fields are immutable all the way down.

    Example::

        class Halt(Message):
            epoch: int
            reason: str
    """

    _abstract_message: ClassVar[bool] = True
    _field_checks: ClassVar[tuple[tuple[str, frozenset[type], Check], ...]] = ()
    __slots__ = ()

    def __copy__(self) -> Message:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Message:
        return self


class ControlMessage(Message):
    """A message that overtakes queued work: it is delivered before any ordinary message.

    Halt and stop are control messages. Control messages are never refused for a full mailbox.
    """

    _abstract_message: ClassVar[bool] = True
    __slots__ = ()
