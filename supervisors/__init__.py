"""OTP-style supervision for pykka actors, on an M:N runtime.

Knows nothing of trading; ``xorj_actors`` builds on it, never the other way round.
"""

from supervisors._actor import DEFAULT_TIMEOUT, Actor, BlockingCallInWorker, Future, Ref
from supervisors._chaos import Fault, inject_fault
from supervisors._introspection import ActorInfo, ActorState
from supervisors._loop_thread import LoopThread
from supervisors._mailbox import MailboxFull, Terminated
from supervisors._message import ControlMessage, Message, MessageDefinitionError, register_immutable_type
from supervisors._runtime import Runtime
from supervisors._scheduler import TimerHandle, WorkerKilled
from supervisors._supervisor import (
    ChildInfo,
    ChildSpec,
    Restart,
    RestartChild,
    StartChild,
    StartChildren,
    Strategy,
    Supervisor,
    SupervisorEscalation,
    TerminateChild,
    WhichChildren,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Actor",
    "ActorInfo",
    "ActorState",
    "BlockingCallInWorker",
    "ChildInfo",
    "ChildSpec",
    "ControlMessage",
    "Fault",
    "LoopThread",
    "Future",
    "MailboxFull",
    "Message",
    "MessageDefinitionError",
    "Ref",
    "Restart",
    "RestartChild",
    "Runtime",
    "StartChild",
    "StartChildren",
    "Strategy",
    "Supervisor",
    "SupervisorEscalation",
    "TerminateChild",
    "Terminated",
    "TimerHandle",
    "WhichChildren",
    "WorkerKilled",
    "inject_fault",
    "register_immutable_type",
]
