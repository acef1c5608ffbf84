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


@pytest.fixture(scope="session")
def annotator_dir(tmp_path_factory) -> Path:
    """lllyasviel/Annotators layout, random weights of the real networks: HED, OpenPose body
    and MiDaS DPT-hybrid (under the MiDaS file's tensor names)."""
    from tests.support.annotators import write_annotator_folder

    return write_annotator_folder(tmp_path_factory.mktemp("annotators"))
