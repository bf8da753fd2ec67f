"""The gate in front of the engine's API: the Host (no DNS rebinding), the key (the owner's or
the Local API's, compared in constant time) and CORS (only for origins the user allowed)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import MutableMapping
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant.engine.requests import ApiError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class Gate:
    """Pure ASGI middleware (streams pass through untouched): Host, API key and CORS checks."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str,
        allowed_hosts: frozenset[str] | None,
        allowed_origins: frozenset[str] = frozenset(),
        owner_key: str = "",
    ):
        self.app = app
        self.api_key = api_key.encode()
        self.owner_key = owner_key.encode()
        self.allowed_hosts = allowed_hosts  # None: any Host (the user bound a public address)
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # WebSockets: none are served, none get through
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = _host_name(headers.get("host", ""))
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            log.warning("Refused a request for Host %r (not a loopback name)", host[:80])
            await ApiError(403, "Host not allowed.", "forbidden").response()(scope, receive, send)
            return
        origin = headers.get("origin")
        cors = origin if origin and origin in self.allowed_origins else None
        if scope["method"] == "OPTIONS":
            await self._preflight(cors, scope, receive, send)
            return
        owner = bool(self.owner_key) and self._given(headers, self.owner_key)
        scope.setdefault("state", {})["owner"] = owner
        if scope["path"] != "/health" and not (owner or self._given(headers, self.api_key)):
            await ApiError(
                401,
                "Missing or wrong API key. Send it as 'Authorization: Bearer KEY'.",
                "authentication_error",
                "invalid_api_key",
            ).response()(scope, receive, send)
            return
        if cors is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", cors.encode("latin-1")),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    def _given(headers: dict[str, str], key: bytes) -> bool:
        given = headers.get("x-api-key", "")
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        return bool(given) and bool(key) and hmac.compare_digest(given.encode(), key)

    async def _preflight(
        self, cors: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if cors is None:
            response = Response(status_code=403)
        else:
            response = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": cors,
                    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Api-Key",
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
        await response(scope, receive, send)


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
