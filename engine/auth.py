"""Who may talk to the engine: the token, and never a web page (ASGI middleware).

Every request needs the engine's token as ``Authorization: Bearer …``. Two places cannot send a
header, and only they accept it elsewhere: the event WebSocket (``?token=…``; a browser's
WebSocket API has no headers) and the OpenAPI page (``/docs?token=…``, which answers with a
``sfumato_token`` cookie that expires after :data:`DOCS_COOKIE_MAX_AGE_S`, so the page's own
requests carry it). A ``?token=`` on any other route is ignored: a token in a URL ends up in
shell histories, proxy logs and browser histories.

A request carrying an ``Origin`` header comes from a web page, which could be any site the user
visits: it is refused even with a valid token. Refused WebSockets are refused during the
handshake with HTTP 401 (token) or 403 (browser origin) where the server supports the ASGI
denial response (uvicorn does); elsewhere they are accepted and closed at once with code
:data:`WS_CLOSE_BAD_TOKEN` or :data:`WS_CLOSE_ORIGIN`.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from engine.protocol import ErrorBody

#: Close code of a WebSocket refused for a missing or wrong token (4000 + HTTP 401).
WS_CLOSE_BAD_TOKEN = 4401
#: Close code of a WebSocket refused because it came from a web page (4000 + HTTP 403).
WS_CLOSE_ORIGIN = 4403
#: Lifetime of the ``/docs`` cookie: a working day; open ``/docs?token=…`` again after.
DOCS_COOKIE_MAX_AGE_S = 8 * 3600
COOKIE_NAME = "sfumato_token"
#: Paths that take the token from the cookie the docs page sets (the page and what it loads).
DOCS_PATHS = ("/docs", "/openapi.json")

BAD_TOKEN = "Missing or wrong token: send 'Authorization: Bearer <token>'"
WEB_PAGE = "Requests from web pages are refused"


class TokenGate:
    """Wrap an ASGI app so that only holders of ``token`` reach it (see the module doc)."""

    def __init__(self, app, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope.get("path", "")
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        from_page = headers.get("origin") is not None
        if not from_page and self._authorised(scope["type"], path, headers, query):
            if scope["type"] == "http" and path == "/docs" and "token" in query:
                return await self.app(scope, receive, self._set_cookie(send))
            return await self.app(scope, receive, send)
        status, message = (403, WEB_PAGE) if from_page else (401, BAD_TOKEN)
        body = ErrorBody(message=message).model_dump_json().encode()
        if scope["type"] == "websocket":
            return await self._refuse_websocket(scope, receive, send, status, message, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _authorised(
        self, kind: str, path: str, headers: dict[str, str], query: dict[str, str]
    ) -> bool:
        candidates = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            candidates.append(auth[7:].strip())
        if kind == "websocket" or path == "/docs":
            candidates.append(query.get("token", ""))
        if kind == "http" and (path in DOCS_PATHS or path.startswith("/docs/")):
            for cookie in headers.get("cookie", "").split(";"):
                name, _, value = cookie.strip().partition("=")
                if name == COOKIE_NAME:
                    candidates.append(value)
        return any(c and hmac.compare_digest(c.encode(), self.token.encode()) for c in candidates)

    def _set_cookie(self, send):
        async def wrapped(message):
            if message["type"] == "http.response.start":
                cookie = (
                    f"{COOKIE_NAME}={self.token}; Max-Age={DOCS_COOKIE_MAX_AGE_S}; "
                    "HttpOnly; SameSite=Strict; Path=/"
                )
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        return wrapped

    @staticmethod
    async def _refuse_websocket(scope, receive, send, status: int, message: str, body: bytes):
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
            return
        await send({"type": "websocket.accept"})
        code = WS_CLOSE_ORIGIN if status == 403 else WS_CLOSE_BAD_TOKEN
        await send({"type": "websocket.close", "code": code, "reason": message})
