"""Keep the garbage collector's full passes from stopping the engine.

A full pass of Python's cyclic collector walks every object the process holds, and no thread
runs Python meanwhile: the event loop answers no request. With torch, diffusers and
transformers imported that is ~360 000 objects and 160–200 ms on the development machine, and
loading a model adds ~145 000 more. Loading makes enough new objects to start such a pass by
itself, so the first job after a start held ``/v1/health`` up for 200 ms (bench/api_latency.py,
docs/performance.md).

Objects that live as long as the engine (the imported libraries) or as the loaded model (its
modules and parameters) are therefore moved out of the collector's sight with
:func:`gc.freeze` once they exist: later passes walk only what jobs make (0.002 ms instead of
157 ms after start-up, measured). Refcounting still frees frozen objects; only reference
*cycles* among them wait, so unloading a model unfreezes before its full collection and the
model's own cycles go with it.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """After start-up, after a model is loaded and after the fast path's warm-up (dynamo's
    graphs and caches, ~250 000 objects): collect the young generations (cheap, a few ms) and
    freeze everything that is left."""
    gc.collect(1)
    gc.freeze()


def collect_everything() -> None:
    """A full collection that also reaches frozen objects (a model being unloaded, memory after
    an out-of-memory error), then freeze what survives again. Costs a full pass (~200 ms)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
