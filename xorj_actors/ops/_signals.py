"""Signals, without handlers: blocked in every thread, taken by one waiting thread.

A Python signal handler runs in the main thread between two bytecodes; if it took a lock the
interrupted code held (``queue.Queue.put`` does), the process would deadlock. So the signals are
blocked before any thread starts (threads inherit the mask) and one thread takes them with
``sigtimedwait``; no code is ever interrupted.

That thread polls (``sigtimedwait`` with a zero timeout, then a short sleep) rather than block in
``sigtimedwait`` with a timeout: CPython's, interrupted (EINTR: the process was stopped and
continued, a debugger attached) once its deadline has passed, returns a siginfo it never filled
in: a signal number nobody sent (0, 1, or one an earlier call left there). With a zero timeout
the kernel never sleeps, so no wait is ever interrupted.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from loguru import logger
from pykka import ActorDeadError

from supervisors import MailboxFull
from xorj_actors.kill_switch import KILL_SWITCH_NAME, HaltBoard, Participant
from xorj_actors.messages import HaltMode, Trigger

__all__ = ["HANDLED_SIGNALS", "SignalWatcher", "block_signals"]

HANDLED_SIGNALS = frozenset({signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
#: How long the signal thread sleeps between two looks at the pending signals: the most a
#: signal waits before it is handled.
POLL_S = 0.02


def _never_called(signum: int, frame: object) -> None:  # pragma: no cover - signals stay blocked
    pass


def block_signals() -> None:
    """Block the handled signals in the calling thread: call it in the main thread first thing.

    A handler is installed too, although it never runs: as PID 1 in a container, the kernel
    discards signals whose disposition is the default, before sigtimedwait could take them.
    """
    if threading.current_thread() is threading.main_thread():
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, _never_called)
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)


class _ReloadWorker:
    """Runs SIGHUP reloads on their own thread: at most one running and one pending.

    A reload blocks (Secrets Manager reads with timeouts and retries, a ``ctl reload-secrets``
    holding the reload lock); on the signal thread it would hold back a SIGUSR2 halt or a SIGTERM.
    SIGHUPs that arrive while one is pending fold into it: the pending reload reads every source
    afresh, so it answers them all.
    """

    def __init__(self, reload: Callable[[str], object]) -> None:
        self._reload = reload
        self._lock = threading.Lock()
        self._pending = False
        self._thread: threading.Thread | None = None

    def request(self, trigger: str) -> None:
        """Queue a reload and return at once."""
        with self._lock:
            if self._pending:
                logger.info("{}: a secrets reload is already pending; this one joins it", trigger)
                return
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, args=(trigger,), name="secrets-reload", daemon=True)
                self._thread.start()

    def _run(self, trigger: str) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
                self._pending = False
            try:
                self._reload(trigger)
            except Exception:  # noqa: BLE001 - a failed reload keeps the old secrets; the worker lives on
                logger.exception("{}: secrets reload failed; the old values stay", trigger)


class SignalWatcher(Participant):
    """SIGUSR1: graceful halt. SIGUSR2: emergency halt. SIGTERM/SIGINT: ordered shutdown.
    SIGHUP: read the credentials again (``ctl reload-secrets``) on a worker thread, so that a
    slow reload never holds back a halt; ignored without ``on_reload``."""

    dedicated_thread: ClassVar[bool] = True

    def __init__(
        self,
        board: HaltBoard,
        on_shutdown: Callable[[str], None],
        kill_file: Path,
        *,
        on_reload: Callable[[str], object] | None = None,
    ) -> None:
        super().__init__(board)
        self.on_shutdown = on_shutdown
        self.on_reload = on_reload
        self._reloads = None if on_reload is None else _ReloadWorker(on_reload)
        self.kill_file = kill_file
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def on_start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="signal-watcher", daemon=True)
        self._thread.start()
        super().on_start()

    def on_terminate(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2)

    def _watch(self) -> None:
        block_signals()  # in case this thread was not created with the mask
        while not self._stopping.is_set():
            try:
                sig = signal.sigtimedwait(HANDLED_SIGNALS, 0)  # never a timeout: see the module
            except InterruptedError:
                continue
            if sig is None:
                self._stopping.wait(POLL_S)
            elif sig.si_signo in HANDLED_SIGNALS:
                self._dispatch(signal.Signals(sig.si_signo))
            else:  # cannot happen with a zero timeout; never a reason for this thread to die
                logger.error("signal thread: sigtimedwait returned signal {}, not a handled one: ignored", sig.si_signo)

    def _dispatch(self, sig: signal.Signals) -> None:
        logger.warning("received {}", sig.name)
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.on_shutdown(sig.name)
            return
        if sig is signal.SIGHUP:
            if self._reloads is not None:
                self._reloads.request(sig.name)
            return
        mode = HaltMode.GRACEFUL if sig is signal.SIGUSR1 else HaltMode.EMERGENCY
        ks = self.runtime.whereis(KILL_SWITCH_NAME)
        trigger = Trigger(mode=mode, reason=f"{sig.name} received", source=sig.name)
        try:
            if ks is None:
                raise ActorDeadError("kill switch not running")
            ks.tell(trigger)
        except (ActorDeadError, MailboxFull) as exc:
            # Fail closed: the kill file outlives a restarting kill switch, which halts on seeing it.
            logger.critical("cannot deliver {} to the kill switch ({!r}); writing the kill file", sig.name, exc)
            self.kill_file.write_text(f"{sig.name} received while the kill switch was unreachable\n")
