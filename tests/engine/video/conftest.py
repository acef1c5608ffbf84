from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory) -> Path:
    """The repo's sample clip: 24 frames, 64×64, 8 fps, no audio."""
    from engine.video.sample_clip import write_sample_clip

    return write_sample_clip(tmp_path_factory.mktemp("clips") / "sample.mp4")


@pytest.fixture(scope="session")
def sample_clip_audio(tmp_path_factory) -> Path:
    """The same clip with a 440 Hz audio track."""
    from engine.video.sample_clip import write_sample_clip

    return write_sample_clip(tmp_path_factory.mktemp("clips") / "sample-audio.mp4", audio=True)
