"""UploadStore without a server: size limit, type check, ids and paths."""

import asyncio

import pytest

from engine.errors import EngineError
from engine.video.uploads import TooLarge, UploadError, UploadStore


async def _chunks(*parts: bytes):
    for p in parts:
        yield p


def test_size_limit_and_nothing_left_behind(tmp_path):
    store = UploadStore(tmp_path / "up", max_bytes=10)
    with pytest.raises(TooLarge, match="larger than"):
        asyncio.run(store.save("a.mp4", _chunks(b"123456", b"789012")))
    assert list((tmp_path / "up").iterdir()) == []


def test_type_by_suffix_and_resolve(tmp_path, sample_clip):
    store = UploadStore(tmp_path / "up")
    with pytest.raises(UploadError, match="not a video or image"):
        store.kind_of("movie.exe")
    info = asyncio.run(store.save("../../evil/clip.mp4", _chunks(sample_clip.read_bytes())))
    assert info.name == "clip.mp4" and info.path.startswith(str(tmp_path / "up"))
    assert store.resolve(info.id) == store.resolve(info.path)
    with pytest.raises(EngineError, match="neither an upload id"):
        store.resolve("no-such-thing")
    with pytest.raises(EngineError):
        store.get("../etc")
