"""The OpenAPI page at ``/docs``, served with no network: Swagger UI's files come from the
``swagger-ui-bundle-v2`` package (module ``swagger_ui_bundle``) and are served under
``/docs/assets/``. FastAPI's own page loads them from a CDN, which an offline machine or a GPU
box without internet cannot reach. Without that package ``/docs`` says how to get it and links
the raw schema, ``/openapi.json``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

ASSETS = "/docs/assets"


def swagger_ui_folder():
    """The folder holding ``swagger-ui-bundle.js`` and its CSS, or None if not installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return swagger_ui_path


def add_docs(app: FastAPI) -> None:
    """``GET /docs`` (and its assets) on an app created with ``docs_url=None``."""
    from fastapi.openapi.docs import get_swagger_ui_html

    folder = swagger_ui_folder()
    if folder is not None:
        from fastapi.staticfiles import StaticFiles

        app.mount(ASSETS, StaticFiles(directory=folder), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if folder is None:
            return HTMLResponse(
                "<!doctype html><title>Sfumato engine API</title><h1>Sfumato engine API</h1>"
                "<p>The interactive page needs the <code>swagger-ui-bundle-v2</code> package "
                "(<code>pip install swagger-ui-bundle-v2</code>). The schema itself is at "
                "<a href='/openapi.json'>/openapi.json</a>.</p>"
            )
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
