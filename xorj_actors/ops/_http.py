"""The HTTP API (aiohttp): health probes, Prometheus metrics, the authenticated kill-switch API.

``GET /health/live``, ``/health/ready``, ``/health/detailed`` follow Kubernetes probe semantics
(200 or 503); ``GET /metrics`` is the Prometheus exposition. ``POST /kill-switch/activate`` and
``POST /kill-switch/recover`` need an HMAC-SHA256 signature (see :func:`sign_request`) with a
fresh timestamp and a nonce never seen before; every call to them is audited, refused or not.
Bad input gets a 4xx JSON error ``{"error": {"code", "message"}}`` and changes nothing.
docs/openapi.yaml is the contract. The server runs on a thread and event loop of its own, so a
busy actor pool cannot make the probes time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web
from loguru import logger

from supervisors import LoopThread
from xorj_actors.audit import audit_event, record
from xorj_actors.breakers import BREAKERS
from xorj_actors.check import ALL_CHECKS, READINESS_CHECKS, Check, CheckContext, CheckResult, run_checks, secret_env_names
from xorj_actors.limits import MIN_KEY_BYTES, OPERATOR_LIMIT
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.metrics import CONTENT_TYPE, Metrics
from xorj_actors.ops._args import RequestError, parse_halt, parse_recover
from xorj_actors.ops._commands import Commands
from xorj_actors.ops.settings import HttpSettings
from xorj_actors.redaction import Redactor

if TYPE_CHECKING:  # the readiness checks read the whole config; config imports ops.settings
    from xorj_actors.config import Config

__all__ = [
    "ApiError",
    "AuditSink",
    "HttpApi",
    "HttpApiServer",
    "RequestAuthenticator",
    "sign_request",
    "signed_headers",
]

TIMESTAMP_HEADER = "X-Xorj-Timestamp"
NONCE_HEADER = "X-Xorj-Nonce"
SIGNATURE_HEADER = "X-Xorj-Signature"
_NONCE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_UNIX_SECONDS = re.compile(r"^[0-9]{1,12}$")
_HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")

#: ``audit(event_type, details)``: where every kill-switch API call is recorded.
AuditSink = Callable[[str, dict[str, Any]], None]
_SEVERITY = {"SECURITY_VIOLATION": "WARNING", "HALT": "CRITICAL", "RECOVERY": "WARNING"}


class ApiError(Exception):
    """A refused request: HTTP status, machine-readable code, human message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


# -- authentication -----------------------------------------------------------------------------


def sign_request(key: bytes, timestamp: int, nonce: str, path: str, body: bytes) -> str:
    """Hex HMAC-SHA256 over ``"<timestamp>\\n<nonce>\\n<path>\\n" + body``.

    The path is signed so that a request signed for one endpoint is useless on another.
    """
    return hmac.new(key, f"{timestamp}\n{nonce}\n{path}\n".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(
    key: bytes, path: str, body: bytes, *, timestamp: int | None = None, nonce: str | None = None
) -> dict[str, str]:
    """The three authentication headers (and the JSON content type) for a request."""
    ts = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_hex(16) if nonce is None else nonce
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(ts),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign_request(key, ts, nonce, path, body),
    }


class RequestAuthenticator:
    """Checks signature, timestamp window and nonce freshness; remembers nonces it accepted.

    A nonce is remembered for twice the allowed clock skew (after that its timestamp is stale
    anyway). When ``cache_size`` live nonces are remembered, new requests are refused (429)
    rather than forgetting a nonce that could still be replayed.
    """

    def __init__(
        self,
        key: bytes | None,
        key_env: str,
        max_skew_s: float,
        cache_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._key_env = key_env
        self._max_skew_s = max_skew_s
        self._cache_size = cache_size
        self._clock = clock
        self._nonces: OrderedDict[str, float] = OrderedDict()  # nonce -> expiry, oldest first
        self._lock = threading.Lock()

    def verify(self, headers: Mapping[str, str], path: str, body: bytes) -> None:
        """Raise :class:`ApiError` unless the request is authentic, fresh and not replayed."""
        if self._key is None:
            raise ApiError(
                503, "auth_unconfigured", f"kill-switch API disabled: {self._key_env} is not set (>= 32 bytes)"
            )
        ts_text = headers.get(TIMESTAMP_HEADER, "")
        nonce = headers.get(NONCE_HEADER, "")
        signature = headers.get(SIGNATURE_HEADER, "")
        if not ts_text or not nonce or not signature:
            required = f"{TIMESTAMP_HEADER}, {NONCE_HEADER} and {SIGNATURE_HEADER} are required"
            raise ApiError(401, "unauthenticated", required)
        if not _UNIX_SECONDS.match(ts_text):
            raise ApiError(401, "bad_timestamp", f"{TIMESTAMP_HEADER} must be Unix seconds")
        if not _NONCE.match(nonce):
            raise ApiError(401, "bad_nonce", f"{NONCE_HEADER} must be 8-128 characters of [A-Za-z0-9._:-]")
        if not _HEX_SHA256.match(signature):
            raise ApiError(401, "bad_signature", f"{SIGNATURE_HEADER} must be 64 hex digits")
        timestamp = int(ts_text)
        now = self._clock()
        if abs(now - timestamp) > self._max_skew_s:
            stale = f"timestamp is more than {self._max_skew_s:g} s from the server's clock"
            raise ApiError(401, "stale_timestamp", stale)
        expected = sign_request(self._key, timestamp, nonce, path, body)
        if not hmac.compare_digest(expected, signature.lower()):
            raise ApiError(401, "bad_signature", "signature does not match the request")
        with self._lock:
            while self._nonces and next(iter(self._nonces.values())) < now:
                self._nonces.popitem(last=False)
            if nonce in self._nonces:
                raise ApiError(401, "replayed", "nonce already used: replayed request")
            if len(self._nonces) >= self._cache_size:
                raise ApiError(429, "busy", "too many signed requests in the replay window; retry later")
            self._nonces[nonce] = now + 2 * self._max_skew_s


def _load_key(settings: HttpSettings, environ: Mapping[str, str]) -> bytes | None:
    value = environ.get(settings.hmac_key_env, "").encode()
    if len(value) < MIN_KEY_BYTES:
        if value:
            logger.error(
                "http: {} is shorter than {} bytes: kill-switch API disabled", settings.hmac_key_env, MIN_KEY_BYTES
            )
        return None
    return value


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
    ) -> None:
        self.settings = settings
        self.context = context
        self.commands = commands
        self.metrics = metrics
        self.audit = audit
        self.auth = authenticator
        #: Secrets pasted into a reason or an operator field stay out of the audit trail too.
        self.redact = redactor

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=self.settings.max_body_bytes)
        app.router.add_get("/health/live", self.live)
        app.router.add_get("/health/ready", self.ready)
        app.router.add_get("/health/detailed", self.detailed)
        app.router.add_get("/metrics", self.scrape)
        app.router.add_post("/kill-switch/activate", self.activate)
        app.router.add_post("/kill-switch/recover", self.recover)
        return app

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # 404, 405 from the router: JSON like every other error
            response = _error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
            if "Allow" in exc.headers:  # RFC 9110: a 405 lists the methods that are allowed
                response.headers["Allow"] = exc.headers["Allow"]
            if request.path.startswith("/kill-switch/"):  # every call there is audited, even these
                details = _call_details(request) | {"outcome": "refused", "status": exc.status, "reason": exc.reason}
                await self._audit("SECURITY_VIOLATION", details)
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
        """Read, authenticate, parse, act; audit the outcome whatever it is."""
        details = _call_details(request)
        try:
            body = await self._read_body(request)
            try:
                self.auth.verify(request.headers, request.path, body)
            except ApiError:
                event_type = "SECURITY_VIOLATION"
                raise
            payload = _json_object(body)
            status, result = await self._blocking(action, payload, details)
        except ApiError as exc:
            details.update(outcome="refused", status=exc.status, reason=exc.message)
            await self._audit(event_type, details)
            return _error_response(exc.status, exc.code, exc.message)
        details.update(outcome="accepted" if status < 300 else "refused", status=status)
        await self._audit(event_type, details)
        return web.json_response(result, status=status)

    async def _read_body(self, request: web.Request) -> bytes:
        if request.content_type != "application/json":
            raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, "too_large", f"body larger than {limit} bytes")
        chunks = []
        size = 0
        while chunk := await request.content.read(65_536):
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too_large", f"body larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

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
            self.commands.trigger(halt, source="http")
        return 202, {"triggered": True, "mode": halt.mode.value}

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
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "bad_json", f"body is not valid JSON: {exc}") from None
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

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._loop_thread = LoopThread("http-api")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 5.0) -> None:
        """Bind and serve; raises if the address cannot be bound."""
        self._loop_thread.start(self._serve(), timeout)

    async def _serve(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self, timeout: float = 5.0) -> None:
        self._loop_thread.stop(self._runner.cleanup, timeout)


class HttpApi(Participant):
    """The HTTP API in the tree: it halts and acks like every actor, and keeps serving.

    Args:
        on_listen: called with ``("http", url)`` and ``("metrics", url)`` once bound.

    Every kill-switch API call goes to the Audit actor as actor ``http_api``.
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
        redactor: Redactor | None = None,
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

        authenticator = RequestAuthenticator(
            _load_key(settings, environ), settings.hmac_key_env, settings.max_clock_skew_s, settings.nonce_cache_size
        )
        if redactor is None:  # the engine injects its one redactor; this is for in-process use
            redactor = Redactor.from_environ(environ, secret_env_names(config))
        commands = Commands(self.runtime, endpoints, data_dir, redactor=redactor)
        api = _Api(settings, context, commands, metrics, self.audit, authenticator, redactor)
        self.server = HttpApiServer(api.app(), settings.host, settings.port)

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
