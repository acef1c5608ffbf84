"""Loaded models are kept out of the collector's full passes, and still freed on unload."""

import gc
import weakref

from engine.models.loader import ModelManager
from engine.models.registry import ModelRegistry


def test_a_loaded_model_is_frozen_and_an_unloaded_one_is_collected(tiny_models_dir):
    gc.unfreeze()
    manager = ModelManager("cpu", "fp32")
    loaded = manager.load(ModelRegistry([tiny_models_dir]).get("tiny-sd"))
    # the pipeline's modules were moved out of the collector's sight: a full pass (and the
    # pause it is for every thread, the event loop included) no longer walks them
    assert gc.get_freeze_count() >= sum(1 for _ in loaded.pipe.unet.modules())
    pipe = weakref.ref(loaded.pipe)
    loaded.pipe.cycle = loaded.pipe  # a reference cycle: refcounting alone cannot free it
    del loaded
    manager.unload()
    assert pipe() is None, "the unloaded model's cycle survived in the frozen generation"
    gc.unfreeze()
