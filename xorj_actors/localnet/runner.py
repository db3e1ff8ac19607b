"""The localnet in-process, on its own thread and event loop, controllable from any thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from xorj_actors.localnet.genesis import Genesis
from xorj_actors.localnet.server import Faults, LocalnetServer
from xorj_actors.localnet.settings import LocalnetSettings
from xorj_actors.localnet.table_admin import TableAdmin
from xorj_actors.tokens import TokenRegistry

__all__ = ["Localnet"]

T = TypeVar("T")


class Localnet:
    """Chain, quote service, quantitative engine and block engine on loopback, served from one thread.

    ``start()`` returns once every server listens. Controls (``advance``, ``set_faults``,
    ...) may be called from any thread; they run on the localnet's thread and wait for it.
    """

    def __init__(
        self,
        settings: LocalnetSettings | None = None,
        *,
        tokens: TokenRegistry | None = None,
        call_timeout: float = 10.0,
    ) -> None:
        """``tokens``: the engine's registry (``Config.token_registry()``); None: the defaults."""
        self.server = LocalnetServer(settings, tokens)
        self._timeout = call_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def genesis(self) -> Genesis:
        return self.server.genesis

    @property
    def settings(self) -> LocalnetSettings:
        return self.server.settings

    @property
    def urls(self) -> dict[str, str | None]:
        """``{"rpc", "ws", "quote", "quant", "block_engine"}``; a service not built yet is ``None``."""
        return dict(self.server.urls)

    def slot(self) -> int:
        """The current processed slot (:class:`~xorj_actors.localnet.chain.ChainView`)."""
        chain = self.server.chain
        return chain.slot() if chain is not None else 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> Localnet:
        """Start the thread and every server; raises what the start raised."""
        if self._thread is not None:
            raise RuntimeError("localnet already started")
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="localnet", daemon=True)
        self._thread.start()
        try:
            started.result(timeout)
        except BaseException:
            self._thread.join(timeout)
            self._thread = None
            raise
        return self

    def _run(self, started: concurrent.futures.Future[None]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.server.start())
        except BaseException as exc:  # reported to start(), which re-raises it
            started.set_exception(exc)
            loop.close()
            return
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.server.stop())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every server and the thread; idempotent."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Localnet:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- controls ---------------------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the localnet's thread and return its result."""
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("localnet not started")
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)

        async def run() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(self._timeout)

    def advance(self, slots: int = 1) -> int:
        """Produce ``slots`` slots now; returns the new processed slot."""
        return self.call(self.server.advance, slots)

    def set_faults(self, **changes: Any) -> Faults:
        """Change network faults (see :class:`~xorj_actors.localnet.server.Faults`)."""
        return self.call(self.server.set_faults, **changes)

    def reset_faults(self) -> None:
        self.call(self.server.reset_faults)

    def drop_websockets(self) -> int:
        return self.call(self.server.drop_websockets)

    def drop_transactions(self, count: int = 1) -> None:
        self.call(self.server.drop_transactions, count)

    def delay_transactions(self, count: int = 1, slots: int = 10) -> None:
        self.call(self.server.delay_transactions, count, slots)

    @property
    def tables(self) -> TableAdmin:
        """The lookup tables (:class:`~xorj_actors.localnet.table_admin.TableAdmin`); call its
        methods through :meth:`call`, on the localnet's thread."""
        tables = self.server.tables
        if tables is None:
            raise RuntimeError("localnet not started")
        return tables
