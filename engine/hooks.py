"""Named, removable hooks on a model's output (the UNet's, mostly).

A method that changes what the UNet returns (calibration subtracts a mean from ε̂) must not
replace ``unet.forward``: that defeats a compiled UNet (engine/fast_path.py installs its own
forward) and an accelerate offload wrapper, and two such methods would overwrite each other.
A hook here is a PyTorch forward hook, run eagerly after the forward (compiled or not), under a
name, so it can be listed, replaced and removed on its own — the shape of diffusers'
``hooks/hooks.py`` registry.

    with unet_hook(pipe.unet, "calibration", fix):   # fix(output, sample, timestep) -> output
        pipe(...)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: fn(output, sample, timestep) -> output, where output is what the module returned.
OutputHook = Callable[[Any, torch.Tensor, Any], Any]

_REGISTRY = "_sfumato_hooks"


def _registry(module: torch.nn.Module) -> dict:
    reg = getattr(module, _REGISTRY, None)
    if reg is None:
        reg = {}
        setattr(module, _REGISTRY, reg)
    return reg


def add_hook(module: torch.nn.Module, name: str, fn: OutputHook) -> None:
    """Run ``fn`` on every output of ``module`` until :func:`remove_hook` (a hook of the same
    name is replaced)."""
    remove_hook(module, name)

    def hook(_module, args, kwargs, output):
        sample = args[0] if args else kwargs.get("sample")
        timestep = args[1] if len(args) > 1 else kwargs.get("timestep")
        return fn(output, sample, timestep)

    _registry(module)[name] = module.register_forward_hook(hook, with_kwargs=True)


def remove_hook(module: torch.nn.Module, name: str) -> bool:
    """Remove the hook called ``name``; False if there was none."""
    handle = _registry(module).pop(name, None)
    if handle is None:
        return False
    handle.remove()
    return True


def hook_names(module: torch.nn.Module) -> list[str]:
    return list(getattr(module, _REGISTRY, {}))


@contextlib.contextmanager
def unet_hook(module: torch.nn.Module, name: str, fn: OutputHook) -> Iterator[None]:
    """``fn`` hooks the module's output within the block only."""
    add_hook(module, name, fn)
    try:
        yield
    finally:
        remove_hook(module, name)
