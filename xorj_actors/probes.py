"""Network probes of the endpoints the engine uses, for ``xorj-actors check`` and ``/health``.

Each asks one cheap real question and returns what it saw (``"healthy"``, ``"HTTP 200"``, whether
a bucket has Object Lock...), or raises: any exception means the endpoint cannot be used. They judge nothing else; what a failure
means is :mod:`xorj_actors.check`'s business.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

__all__ = ["http_get", "jsonrpc_health", "jupiter_prices", "object_lock_enabled", "websocket_open"]


def jsonrpc_health(url: str, timeout: float) -> str:
    """Solana JSON-RPC ``getHealth`` answers ``"ok"``."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getHealth"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - configured URL
        body = json.loads(reply.read(65_536))
    if body.get("result") != "ok":
        raise ValueError(f"getHealth answered {body.get('error') or body.get('result')!r}")
    return "healthy"


def websocket_open(url: str, timeout: float) -> str:
    """The WebSocket opening handshake completes."""
    from websockets.sync.client import connect

    with connect(url, open_timeout=timeout, close_timeout=timeout):
        return "handshake ok"


def http_get(url: str, timeout: float) -> str:
    """Anything below 500 answers ``GET url``: reachable (a 401 or 404 still is)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 - configured URL
            return f"HTTP {reply.status}"
    except urllib.error.HTTPError as exc:  # it answered: reachable, unless it is failing
        if exc.code >= 500:
            raise
        return f"HTTP {exc.code}"


def object_lock_enabled(client: Any, bucket: str) -> bool:
    """Whether the S3 ``bucket`` has Object Lock enabled (``client``: a boto3 S3 client)."""
    from botocore.exceptions import ClientError

    try:
        reply = client.get_object_lock_configuration(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ObjectLockConfigurationNotFoundError":
            return False
        raise
    return reply.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"


def jupiter_prices(
    base_url: str, headers: Mapping[str, str], tokens: Mapping[str, str], timeout: float, max_bytes: int
) -> str:
    """``GET {base_url}/price/v3?ids=`` (Jupiter's Price API) with ``headers`` prices every mint of
    ``tokens`` (mint -> symbol, at most :data:`~xorj_actors.jupiter.MAX_IDS`).

    Raises:
        ValueError: an HTTP error (its status and the start of its body), an answer that is not
            Price v3's shape, or a token left unpriced (its symbols).
    """
    from solders.pubkey import Pubkey

    from xorj_actors import strict_json
    from xorj_actors.jupiter import MAX_IDS, parse_prices

    if not 0 < len(tokens) <= MAX_IDS:
        raise ValueError(f"/price/v3 takes 1 to {MAX_IDS} mints, not {len(tokens)}")
    query = urllib.parse.urlencode({"ids": ",".join(tokens)})
    request = urllib.request.Request(f"{base_url}/price/v3?{query}", headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - configured URL
            body = reply.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        said = exc.read(200).decode("utf-8", "replace").strip()
        raise ValueError(f"/price/v3 answered HTTP {exc.code}: {said}") from None
    if len(body) > max_bytes:
        raise ValueError(f"/price/v3 answered more than {max_bytes} bytes")
    prices = parse_prices(strict_json.loads(body), [Pubkey.from_string(m) for m in tokens])
    unpriced = [symbol for mint, symbol in tokens.items() if Pubkey.from_string(mint) not in prices]
    if unpriced:
        # A trade needs the reference price of both its mints: these tokens cannot trade.
        raise ValueError(f"/price/v3 has no price for {', '.join(unpriced)}")
    return f"/price/v3 priced all {len(tokens)} tokens"
