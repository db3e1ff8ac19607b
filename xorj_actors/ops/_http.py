"""The HTTP API (aiohttp): health probes, Prometheus metrics, the authenticated kill-switch API.

``GET /health/live``, ``/health/ready``, ``/health/detailed`` follow Kubernetes probe semantics
(200 or 503); ``GET /metrics`` is the Prometheus exposition. ``POST /kill-switch/activate`` and
``POST /kill-switch/recover`` need an HMAC-SHA256 signature (``_http_auth.py``) with a fresh
timestamp and a nonce never seen before. Every call to them is audited: an authenticated one as
one entry of its own (``HALT`` or ``RECOVERY``, a 500 included), an unauthenticated one only
counted, one entry per source and window (``_http_refusals.py``), so a flood cannot fill the
trail nor pass for a halt. ``POST /slack/panic`` is the panic button in Slack (``_slack.py``,
``_slack_panic.py``): Slack's signature instead of ours, audited the same way. Bad input gets a
4xx JSON error ``{"error": {"code", "message"}}`` and changes nothing; bodies are parsed by
:mod:`xorj_actors.strict_json`. docs/openapi.yaml is the contract. The server runs on a thread
and event loop of its own, so a busy actor pool cannot make the probes time out, behind a
connection guard (``_http_guard.py``: head deadline, connection limits) so a flood of slow
connections cannot exhaust descriptors or lock operators out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
from aiohttp import web
from loguru import logger

from supervisors import LoopThread
from xorj_actors.audit import audit_event, record
from xorj_actors.breakers import BREAKERS
from xorj_actors.check import ALL_CHECKS, READINESS_CHECKS, Check, CheckContext, CheckResult, run_checks, secret_env_names
from xorj_actors.limits import OPERATOR_LIMIT
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.metrics import CONTENT_TYPE, Metrics
from xorj_actors.ops._args import RequestError, parse_halt, parse_recover
from xorj_actors.ops._commands import Commands
from xorj_actors.ops._http_auth import NONCE_HEADER, ApiError, LiveKey, RequestAuthenticator, live_key, load_key
from xorj_actors.ops._http_guard import ConnectionGuard
from xorj_actors.ops._http_refusals import RefusalTally
from xorj_actors.ops._slack import FORM, SlashCommand, claimed_sender, is_ssl_check
from xorj_actors.ops._slack_panic import SlackPanic, slack_answer
from xorj_actors.ops.settings import HttpSettings
from xorj_actors.redaction import Redactor
from xorj_actors.strict_json import JSONRefused, loads

if TYPE_CHECKING:  # the readiness checks read the whole config; config imports ops.settings
    from xorj_actors.config import Config

__all__ = ["AuditSink", "HttpApi", "HttpApiServer"]

#: ``audit(event_type, details)``: where every kill-switch API call is recorded.
AuditSink = Callable[[str, dict[str, Any]], None]
_SEVERITY = {"SECURITY_VIOLATION": "WARNING", "HALT": "CRITICAL", "RECOVERY": "WARNING"}
#: Paths whose wrong methods and unknown subpaths are counted like unauthenticated requests.
_GUARDED = ("/kill-switch/", "/slack/")


def _error_response(status: int, code: str, message: str, *, close: bool = False) -> web.Response:
    response = web.json_response({"error": {"code": code, "message": message}}, status=status)
    if close:  # the rest of the body is not worth reading: drop the connection after the answer
        response.force_close()
    return response


# -- the application ----------------------------------------------------------------------------


class _Api:
    """Route handlers; blocking work (checks, asks, audit) runs in the loop's executor."""

    def __init__(
        self,
        settings: HttpSettings,
        context: Callable[[], CheckContext],
        commands: Commands,
        metrics: Metrics,
        audit: AuditSink,
        authenticator: RequestAuthenticator,
        redactor: Redactor,
        slack: SlackPanic | None = None,
    ) -> None:
        self.settings = settings
        self.slack = slack
        self.context = context
        self.commands = commands
        self.metrics = metrics
        self.audit = audit
        self.auth = authenticator
        #: Secrets pasted into a reason or an operator field stay out of the audit trail too.
        self.redact = redactor
        self.refusals = RefusalTally(settings.refusal_window_s)
        self._draining: set[asyncio.Task[None]] = set()
        #: Connections the guard refuses, evicts or times out are counted like unauthenticated requests.
        self.guard = ConnectionGuard(settings, self._refused)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=self.settings.max_body_bytes)
        app.on_cleanup.append(self._last_refusals)
        app.router.add_get("/health/live", self.live)
        app.router.add_get("/health/ready", self.ready)
        app.router.add_get("/health/detailed", self.detailed)
        app.router.add_get("/metrics", self.scrape)
        app.router.add_post("/kill-switch/activate", self.activate)
        app.router.add_post("/kill-switch/recover", self.recover)
        app.router.add_post("/slack/panic", self.slack_panic)
        return app

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            with self.guard.serving(request.transport):
                response = await handler(request)
        except web.HTTPException as exc:  # 404, 405 from the router: JSON like every other error
            code = exc.reason.lower().replace(" ", "_")
            response = _error_response(exc.status, code, exc.reason)
            if "Allow" in exc.headers:  # RFC 9110: a 405 lists the methods that are allowed
                response.headers["Allow"] = exc.headers["Allow"]
            if request.path.startswith(_GUARDED):  # counted: it never reached authentication
                self._refused(request.remote, f"{exc.status} {code}", request.path)
        except Exception:  # noqa: BLE001 - a bug answers 500, the engine goes on
            logger.exception("http: {} {} failed", request.method, request.path)
            response = _error_response(500, "internal", "internal error (logged)")
        route = request.match_info.route.resource
        path = route.canonical if route is not None else "other"
        self.metrics.http_requests.labels(path, str(response.status)).inc()
        return response

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # -- health ----------------------------------------------------------------------------

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _run(self, checks: tuple[Check, ...]) -> tuple[CheckContext, list[CheckResult]]:
        ctx = self.context()
        # Concurrently: one probe waiting on a slow endpoint must not add its timeout to the others'.
        results = await asyncio.gather(*(self._blocking(run_checks, (check,), ctx) for check in checks))
        return ctx, [r for (r,) in results]

    async def ready(self, request: web.Request) -> web.Response:
        ctx, results = await self._run(READINESS_CHECKS)
        ok = not any(r.failed(ctx.production) for r in results)
        return web.json_response(
            {"ready": ok, "checks": [_result(r, ctx.production) for r in results]}, status=200 if ok else 503
        )

    async def detailed(self, request: web.Request) -> web.Response:
        """Every component; the status code is readiness's, the rest is information."""
        ctx, results = await self._run(ALL_CHECKS)
        ok = not any(r.failed(ctx.production) for c, r in zip(ALL_CHECKS, results) if c in READINESS_CHECKS)
        components = [_result(r, ctx.production) for r in results] + _breakers(self.commands)
        return web.json_response(
            {"ready": ok, "environment": ctx.config.engine.environment, "components": components},
            status=200 if ok else 503,
        )

    async def scrape(self, request: web.Request) -> web.Response:
        body = await self._blocking(self.metrics.exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    # -- kill switch -----------------------------------------------------------------------

    async def activate(self, request: web.Request) -> web.Response:
        return await self._signed(request, "HALT", self._activate)

    async def recover(self, request: web.Request) -> web.Response:
        return await self._signed(request, "RECOVERY", self._recover)

    async def _signed(
        self, request: web.Request, event_type: str, action: Callable[[dict[str, Any], dict[str, Any]], tuple[int, Any]]
    ) -> web.Response:
        """Read and authenticate, then parse and act; audit the outcome whatever it is.

        Until :meth:`RequestAuthenticator.verify` returns, nothing is known of the sender: a
        refusal is only counted (:meth:`_refused`), and never typed as the endpoint's event.
        From then on every outcome, a 500 included, is one entry of ``event_type``.
        """
        body = await self._authenticated(request, lambda b: self.auth.verify(request.headers, request.path, b))
        if isinstance(body, web.Response):
            return body
        details = _call_details(request)

        async def act() -> tuple[str, int, Any]:
            if request.content_type != "application/json":
                raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
            return event_type, *await self._blocking(action, _json_object(body), details)

        return await self._acted(request, event_type, details, act)

    async def _acted(
        self, request: web.Request, event_type: str, details: dict[str, Any],
        act: Callable[[], Awaitable[tuple[str, int, Any]]],
    ) -> web.Response:
        """Run an authenticated request's ``act`` (its event type, status and answer) and audit the
        outcome, a refusal or a 500 included (as ``event_type``)."""
        try:
            event_type, status, result = await act()
        except ApiError as exc:
            details.update(outcome="refused", status=exc.status, reason=exc.message)
            await self._audit(event_type, details)
            return _error_response(exc.status, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - a bug answers 500 and is audited like any answer
            logger.exception("http: {} {} failed", request.method, request.path)
            details.update(outcome="error", status=500, reason=f"internal error: {type(exc).__name__}")
            await self._audit(event_type, details)
            return _error_response(500, "internal", "internal error (logged)")
        details.setdefault("outcome", "accepted" if status < 300 else "refused")
        details.update(status=status)
        await self._audit(event_type, details)
        return web.json_response(result, status=status)

    async def _authenticated(
        self, request: web.Request, verify: Callable[[bytes], None], claimed: Callable[[bytes], str] = lambda _: ""
    ) -> bytes | web.Response:
        """The body once ``verify`` accepts it, else the refusal's answer (counted, never an entry).

        ``claimed`` names who an unauthenticated body claims to be, in the tally's kind.
        """
        body = b""
        try:
            body = await self._read_body(request)
            verify(body)
            return body
        except ApiError as exc:
            who = claimed(body)
            self._refused(request.remote, f"{exc.status} {exc.code}" + (f" (claims {who})" if who else ""), request.path)
            return _error_response(exc.status, exc.code, exc.message, close=exc.status in (408, 413))
        except (ConnectionError, aiohttp.ClientConnectionError):
            self._refused(request.remote, "client disconnected", request.path)
            return _error_response(400, "disconnected", "the client went away", close=True)  # nobody reads it
        except Exception:  # noqa: BLE001 - a bug: answered and counted, never one entry per request
            logger.exception("http: {} {} failed before authentication", request.method, request.path)
            self._refused(request.remote, "500 internal", request.path)
            return _error_response(500, "internal", "internal error (logged)", close=True)

    # -- the panic button in Slack ----------------------------------------------------------

    async def slack_panic(self, request: web.Request) -> web.Response:
        """A Slack slash command: verified like the kill-switch API (a refusal only counted), then
        one audit entry per request with the Slack user, whatever the outcome."""
        slack = self.slack
        if slack is None:
            self._refused(request.remote, "404 slack_off", request.path)
            return _error_response(404, "not_found", "the Slack panic button is off (no [slack] section)")

        def verify(b: bytes) -> None:
            if not is_ssl_check(b):
                slack.verifier.verify(request.headers, b)

        body = await self._authenticated(request, verify, claimed_sender)
        if isinstance(body, web.Response):
            return body
        if is_ssl_check(body):
            return web.json_response(slack_answer(""))
        details: dict[str, Any] = {"what": f"slack POST {request.path[:200]}", "remote": request.remote}

        async def act() -> tuple[str, int, Any]:
            if request.content_type != FORM:
                raise ApiError(415, "unsupported_media_type", f"Content-Type must be {FORM}")
            try:
                command = SlashCommand.from_body(body)
            except ApiError:  # signed, but no slash command: who it names, as it names them
                details.update(slack_user=claimed_sender(body))
                raise
            event_type, answer = await self._blocking(slack.handle, command, details)
            return event_type, 200, answer

        # A request refused before any command ran (wrong content type, no slash command) halted nothing.
        return await self._acted(request, "SYSTEM_EVENT", details, act)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, "too_large", f"body larger than {limit} bytes")
        chunks = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout_s):
                while chunk := await request.content.read(65_536):
                    size += len(chunk)
                    if size > limit:
                        raise ApiError(413, "too_large", f"body larger than {limit} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise ApiError(408, "request_timeout", f"body not received within {self.settings.body_timeout_s:g} s") from None
        return b"".join(chunks)

    def _refused(self, source: str | None, kind: str, path: str | None = None) -> None:
        """Count an unauthenticated refusal; the window's entries are written when it closes."""
        if self.refusals.add(source, kind, path):
            asyncio.get_running_loop().call_later(self.refusals.window_s, self._drain_soon)

    def _drain_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.drain_refusals())
        self._draining.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._draining.discard)

    async def _last_refusals(self, _app: web.Application) -> None:
        await asyncio.gather(*self._draining)  # a window that closed just now, then the open one
        await self.drain_refusals()

    async def drain_refusals(self) -> None:
        """Write one entry per source counted in the window (also at shutdown)."""
        for details in self.refusals.drain():
            logger.warning(
                "http: {} unauthenticated refusals from {} in {:g} s: {}",
                details["count"], details["remote"], self.refusals.window_s, details["refusals"],
            )
            await self._audit("SECURITY_VIOLATION", details)

    async def _audit(self, event_type: str, details: dict[str, Any]) -> None:
        try:
            await self._blocking(self.audit, event_type, self.redact.deep(details))
        except Exception:  # noqa: BLE001 - the answer already happened; the failure is loud
            logger.exception("http: could not audit {} {}", event_type, details.get("what"))

    def _activate(self, payload: dict[str, Any], details: dict[str, Any]) -> tuple[int, Any]:
        with _api_errors():
            given = parse_halt(payload, "operator halt over the HTTP API")
            halt = dataclasses.replace(given, reason=self.redact(given.reason))
            details.update(mode=halt.mode.value, reason_given=halt.reason)
            held = self.commands.trigger(halt, source="http")
        return 202, {"triggered": True, "mode": halt.mode.value, **({"held": held} if held else {})}

    def _recover(self, payload: dict[str, Any], details: dict[str, Any]) -> tuple[int, Any]:
        args = {"operator": "http", **payload}
        epoch = payload.get("epoch")
        details.update(operator=str(args.get("operator"))[:OPERATOR_LIMIT], epoch=epoch if isinstance(epoch, int) else None)
        with _api_errors():
            outcome = self.commands.recover(parse_recover(args))
        return (200 if outcome["accepted"] else 409), outcome


def _call_details(request: web.Request) -> dict[str, Any]:
    """What the audit trail records of every kill-switch call (never the signature or the body)."""
    return {
        "what": f"http {request.method} {request.path[:200]}",
        "remote": request.remote,
        "nonce": request.headers.get(NONCE_HEADER, "")[:128],
    }


@contextlib.contextmanager
def _api_errors() -> Iterator[None]:
    """A command's refusal as an HTTP error: 400 for bad input, 503 otherwise."""
    try:
        yield
    except RequestError as exc:
        raise ApiError(400 if exc.code == "bad_request" else 503, exc.code, exc.message) from None


def _json_object(body: bytes) -> dict[str, Any]:
    try:  # strict: deep nesting, huge integers, NaN and duplicate keys are refused by name
        payload = loads(body)
    except JSONRefused as exc:
        raise ApiError(400, "bad_json", f"body refused: {exc}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_request", "body must be a JSON object")
    return payload


def _result(r: CheckResult, production: bool) -> dict[str, Any]:
    return {"name": r.name, "status": r.status.value, "ok": not r.failed(production), "detail": r.detail}


def _breakers(commands: Commands) -> list[dict[str, Any]]:
    states = commands.breaker_states()
    return [
        {"name": f"breaker:{b}", "status": "ok" if ok else "fail", "ok": ok, "detail": states.get(b, "not running")}
        for b in BREAKERS
        for ok in (states.get(b) == "CLOSED",)
    ]


# -- the server thread --------------------------------------------------------------------------


class HttpApiServer:
    """Serves an aiohttp application from a thread and event loop of its own."""

    def __init__(self, app: web.Application, host: str, port: int, guard: ConnectionGuard | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.guard = guard
        # A request still in progress at stop (a slow body) gets 2 s, not 60; the unread rest of a
        # refused body is drained for at most 2 s (not 10) before the connection closes.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=2.0, lingering_time=2.0
        )
        self._server: asyncio.Server | None = None
        self._loop_thread = LoopThread("http-api")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 5.0) -> None:
        """Bind and serve; raises if the address cannot be bound."""
        self._loop_thread.start(self._serve(), timeout)

    async def _serve(self) -> None:
        await self._runner.setup()
        factory = self._runner.server
        assert factory is not None
        # Bound here rather than by a TCPSite: the guard wraps aiohttp's protocol factory.
        protocol = factory if self.guard is None else self.guard.protocol_factory(factory)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(protocol, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cleanup(self) -> None:
        if self._server is not None:
            self._server.close()  # stop accepting; the runner closes the open connections
        await self._runner.cleanup()
        # What is left (a handler still draining a client's unread body) ends with the loop.
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def stop(self, timeout: float = 5.0) -> None:
        self._loop_thread.stop(self._cleanup, timeout)


class HttpApi(Participant):
    """The HTTP API in the tree: it halts and acks like every actor, and keeps serving.

    Args:
        on_listen: called with ``("http", url)`` and ``("metrics", url)`` once bound.
        key_grace: when the engine rotated the HMAC key from one value to another (the previous
            key then stays usable ``previous_key_grace_s``); every call is audited as ``http_api``.
    """

    dedicated_thread: ClassVar[bool] = True

    def __init__(
        self,
        board: HaltBoard,
        config: Config,
        data_dir: Path,
        environ: Mapping[str, str],
        endpoints: Callable[[], Mapping[str, str]],
        metrics: Metrics,
        *,
        on_listen: Callable[[str, str], None] | None = None,
        redactor: Redactor | None = None, key_grace: Callable[[str, str], float | None] | None = None,
    ) -> None:
        super().__init__(board)
        settings = config.http
        self.metrics = metrics
        self.on_listen = on_listen

        def context() -> CheckContext:
            return CheckContext(
                config=config, data_dir=data_dir, environ=environ, runtime=self.runtime, board=board,
                endpoints=endpoints(), timeout_s=settings.probe_timeout_s,
            )

        http_key = LiveKey(lambda: load_key(settings, environ), lambda: environ.get(settings.hmac_key_env, ""),
                           settings.previous_key_grace_s, key_grace)  # read on use: reloads, rotations change it
        authenticator = RequestAuthenticator(
            http_key, settings.hmac_key_env, settings.max_clock_skew_s, settings.nonce_cache_size
        )
        if redactor is None:  # the engine injects its one redactor; this is for in-process use
            redactor = Redactor.from_environ(environ, secret_env_names(config))
        commands = Commands(
            self.runtime, endpoints, data_dir, redactor=redactor, board=board, kill_file=data_dir / config.kill_switch.kill_file
        )
        slack = None
        if (slack_cfg := config.slack) is not None:
            secret = live_key(lambda: slack_cfg.secret(environ), lambda: environ.get(slack_cfg.signing_secret_env, ""))
            slack = SlackPanic(slack_cfg, commands, board, redactor, secret)
        api = _Api(settings, context, commands, metrics, self.audit, authenticator, redactor, slack)
        self.server = HttpApiServer(api.app(), settings.host, settings.port, api.guard)

    def audit(self, event_type: str, details: dict[str, Any]) -> None:
        """Record one call in the audit trail (the Audit actor keeps it even while its store is down)."""
        event = audit_event(event_type, "http_api", details, severity=_SEVERITY.get(event_type, "INFO"))
        if not record(self.runtime, event):
            raise RuntimeError("the Audit actor is not reachable")

    def on_start(self) -> None:
        self.metrics.watch(self.runtime, self.board)
        self.server.start()
        logger.info("http api listening on {}", self.server.url)
        if self.on_listen is not None:
            self.on_listen("http", self.server.url)
            self.on_listen("metrics", f"{self.server.url}/metrics")
        super().on_start()

    def on_terminate(self) -> None:
        self.server.stop()
