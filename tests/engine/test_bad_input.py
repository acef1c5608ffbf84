"""Hostile and careless requests get a 4xx that a person can act on, never a 500.

The real engine app runs in this process (tests/support/inprocess.py); its queue worker is not
started, so nothing submitted here renders. Each case below was an HTTP 500 once.
"""

import json
import logging
import struct
import zlib

import pytest
from starlette.testclient import TestClient

from tests.support.inprocess import AUTH, engine_app

LONG = "a" * 300


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_models_dir):
    data = tmp_path_factory.mktemp("bad-input")
    extra = data / "more-models"
    extra.mkdir()
    (extra / "old.ckpt").write_bytes(b"not a safetensors file")  # listed, with its problem
    app, engine = engine_app(
        data / "data", tiny_models_dir, max_upload_mb=1, extra_models_dirs=[extra]
    )
    return TestClient(app, raise_server_exceptions=False, headers=AUTH), engine


@pytest.fixture
def client(setup):
    return setup[0]


def _gen(**params):
    return {"json": {"job": {"kind": "generate", "params": params}}}


def _png(width: int, height: int) -> bytes:
    """A PNG header declaring ``width``×``height`` with a tiny (truncated) image stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
        + chunk(b"IEND", b"")
    )


CASES = {
    "~user model path (load)": (
        "POST",
        "/v1/models/load",
        {"json": {"path": "~unknownuser/m"}},
        "no user",
    ),
    "~user model id (load)": (
        "POST",
        "/v1/models/load",
        {"json": {"id": "~unknownuser"}},
        "no user",
    ),
    "~user model (fits)": ("GET", "/v1/fits", {"params": {"model": "~unknownuser/m"}}, "no user"),
    "~user model (generate)": ("POST", "/v1/jobs", _gen(model="~unknownuser/m"), "no user"),
    "~user model (fit job)": (
        "POST",
        "/v1/jobs",
        {"json": {"job": {"kind": "analytic_fit", "params": {"model": "~unknownuser/m"}}}},
        "no user",
    ),
    "~user video source (preview)": (
        "POST",
        "/v1/video/control_preview",
        {"json": {"source": "~unknownuser/v.mp4"}},
        "upload",
    ),
    "~user video source (edit)": (
        "POST",
        "/v1/jobs",
        {
            "json": {
                "job": {
                    "kind": "video_edit",
                    "params": {"source": "~unknownuser/v.mp4", "target_prompt": "x"},
                }
            }
        },
        "upload",
    ),
    "long model path (load)": ("POST", "/v1/models/load", {"json": {"path": LONG}}, "too long"),
    "long model (fits)": ("GET", "/v1/fits", {"params": {"model": LONG}}, "too long"),
    "long model (generate)": ("POST", "/v1/jobs", _gen(model=LONG), "too long"),
    "long video source (preview)": (
        "POST",
        "/v1/video/control_preview",
        {"json": {"source": LONG}},
        "upload",
    ),
    "long upload id": ("GET", f"/v1/uploads/{LONG}", {}, "No upload"),
    "long upload name": (
        "POST",
        "/v1/uploads",
        {"params": {"name": LONG + ".png"}, "content": b"x"},
        "longer than",
    ),
    "NUL in upload name": (
        "POST",
        "/v1/uploads",
        {"params": {"name": "a\x00.png"}, "content": b"x"},
        "NUL",
    ),
    "NUL in model path": ("POST", "/v1/models/load", {"json": {"path": "m\x00"}}, "NUL"),
    "decompression bomb": (
        "POST",
        "/v1/uploads",
        {"params": {"name": "bomb.png"}, "content": _png(20000, 20000)},
        "pixels",
    ),
    "malformed JSON": (
        "POST",
        "/v1/jobs",
        {"content": b'{"job": {kind', "headers": {"content-type": "application/json"}},
        "not valid JSON",
    ),
    "NaN": (
        "POST",
        "/v1/jobs",
        {
            "content": b'{"job":{"kind":"generate","params":{"cfg_scale":NaN}}}',
            "headers": {"content-type": "application/json"},
        },
        "not a number",
    ),
    "infinity": (
        "POST",
        "/v1/jobs",
        {
            "content": b'{"job":{"kind":"generate","params":{"eta":-Infinity}}}',
            "headers": {"content-type": "application/json"},
        },
        "not a number",
    ),
    "unknown job kind": ("POST", "/v1/jobs", {"json": {"job": {"kind": "paint"}}}, "not a kind"),
    "over-long prompt": ("POST", "/v1/jobs", _gen(prompt="x" * 100_000), "at most"),
    "body over the limit": (
        "POST",
        "/v1/jobs",
        {
            "content": b"{" + b" " * (2 * 1024**2) + b"}",
            "headers": {"content-type": "application/json"},
        },
        "larger than",
    ),
    "upload over the limit": (
        "POST",
        "/v1/uploads",
        {"params": {"name": "big.png"}, "content": b"\x00" * (2 * 1024**2)},
        "upload limit",
    ),
    "calibration without a fit": ("POST", "/v1/jobs", _gen(calibrated=True), "calibration_fit"),
    "model marked broken": ("POST", "/v1/jobs", _gen(model="old"), "cannot be used"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_with_a_message_not_a_500(client, case):
    method, path, kwargs, words = CASES[case]
    r = client.request(method, path, **kwargs)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    body = r.json()
    assert words.lower() in body["message"].lower(), body["message"]
    text = json.dumps(body)
    for jargon in (
        "pydantic",
        "errors.pydantic.dev",
        "Input tag",
        "JSON decode error",
        "less than or equal",
    ):
        assert jargon not in text
    assert len(body["message"]) < 600  # the 300-character inputs are cut in messages


def test_uploads_can_be_deleted(client):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, format="PNG")
    r = client.post("/v1/uploads", params={"name": "red.png"}, content=buf.getvalue())
    assert r.status_code == 201, r.text
    upload = r.json()
    assert client.delete(f"/v1/uploads/{upload['id']}").json()["name"] == "red.png"
    assert client.get(f"/v1/uploads/{upload['id']}").status_code == 404
    assert client.delete(f"/v1/uploads/{upload['id']}").status_code == 404


def test_a_remaining_500_is_logged_with_its_traceback(setup, monkeypatch, caplog):
    client, engine = setup

    def broken():
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(engine, "list_models", broken)
    with caplog.at_level(logging.ERROR):
        r = client.get("/v1/models")
    assert r.status_code == 500
    assert "ZeroDivisionError" in r.json()["message"] and "engine log" in r.json()["message"]
    records = [rec for rec in caplog.records if rec.exc_info]
    assert records and records[0].exc_info[0] is ZeroDivisionError
    assert "/v1/models" in records[0].getMessage()
