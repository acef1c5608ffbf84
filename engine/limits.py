"""Limits on what a request may ask, stated once (docs/api-limits.md lists them for people).

Uploads have their own limit (``--max-upload-mb``, :class:`engine.video.uploads.UploadStore`),
checked while the bytes arrive; every other request body is JSON and small.
"""

from __future__ import annotations

from engine.protocol import ErrorBody

#: Largest request body outside ``POST /v1/uploads`` (JSON: a job, a preview request).
MAX_BODY_BYTES = 1024**2
#: Longest prompt or negative prompt, in characters (A1111's long prompts are ~2 000).
MAX_PROMPT_CHARS = 20_000
#: Paths whose bodies are files, limited by the upload store instead.
UNLIMITED_PATHS = ("/v1/uploads",)


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, by its Content-Length at once or by
    counting as it arrives (chunked bodies have no length)."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                return await self._refuse(send)
        seen, refused = 0, False

        async def counted():
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    await self._refuse(send)
                    return {
                        "type": "http.disconnect"
                    }  # the app stops reading; its answer is dropped
            return message

        async def unless_refused(message):
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)

    async def _refuse(self, send) -> None:
        body = (
            ErrorBody(
                message=f"The request body is larger than {self.max_bytes // 1024} KiB, "
                "the limit for JSON requests (files go to POST /v1/uploads)",
                field="body",
            )
            .model_dump_json()
            .encode()
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def prompt_problems(params, field: str) -> list[tuple[str, str]]:
    """(field, message) for each prompt of ``params`` longer than :data:`MAX_PROMPT_CHARS`."""
    out = []
    for name in ("prompt", "negative_prompt", "source_prompt", "target_prompt"):
        text = getattr(params, name, None)
        if isinstance(text, str) and len(text) > MAX_PROMPT_CHARS:
            message = f"is {len(text):,} characters long; at most {MAX_PROMPT_CHARS:,} are accepted"
            out.append((f"{field}.{name}", message))
    return out
