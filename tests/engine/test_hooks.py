"""Named, removable output hooks (engine/hooks.py)."""

import torch

from engine.hooks import add_hook, hook_names, remove_hook, unet_hook


class Net(torch.nn.Module):
    def forward(self, sample, timestep):
        return sample * 2


def test_named_hooks_replace_stack_and_go():
    net, x = Net(), torch.ones(2)
    seen = []

    def plus(k):
        def fn(out, sample, timestep):
            seen.append((float(sample[0]), timestep))
            return out + k

        return fn

    add_hook(net, "a", plus(1))
    add_hook(net, "a", plus(10))  # same name: replaced, not stacked
    assert hook_names(net) == ["a"] and net(x, 5).tolist() == [12.0, 12.0]
    with unet_hook(net, "b", plus(100)):
        assert hook_names(net) == ["a", "b"] and net(x, timestep=7).tolist() == [112.0, 112.0]
    assert hook_names(net) == ["a"] and seen[-1] == (1.0, 7)
    assert remove_hook(net, "a") and not remove_hook(net, "a")
    assert net(x, 5).tolist() == [2.0, 2.0] and "forward" not in vars(net)
