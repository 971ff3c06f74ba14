"""torch-dsd: a full set turns the state of a 0-d DTensor parameter into a plain CPU tensor.

A model with a 0-d (scalar) parameter and a vector, both distributed as
DTensors (``Replicate`` on a mesh of one rank), and SGD with momentum: after one step, its
``momentum_buffer`` is a 0-d DTensor like the parameter.
``get_optimizer_state_dict(full_state_dict=True)`` then
``set_optimizer_state_dict`` into a fresh model and optimizer: the loaded
``momentum_buffer`` is a plain ``torch.Tensor``, because the full set's
``_distribute_state_dict`` keeps every 0-d tensor as ``value.cpu()`` (it
takes 0-d values for step counts) instead of distributing it like the
target's DTensor state.  The state so loses its DTensor type, and (on CUDA)
its device.

Standalone: torch only, one process, gloo.  Exits 1 while the defect holds.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Replicate, distribute_tensor


class Scalar(torch.nn.Module):
    def __init__(self, mesh) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(distribute_tensor(torch.tensor(2.0), mesh, [Replicate()]))
        # A state tensor with a dim: without one the set stops earlier ("Expected device to be set").
        self.weight = torch.nn.Parameter(distribute_tensor(torch.ones(3), mesh, [Replicate()]))

    def forward(self, x):
        return DTensor.from_local(x, self.scale.device_mesh, [Replicate()], run_check=False) * self.weight * self.scale


def make(mesh, train: bool):
    torch.manual_seed(0)
    model = Scalar(mesh)
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if train:
        model(torch.ones(3)).to_local().sum().backward()
        optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29544")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        full = StateDictOptions(full_state_dict=True)
        model, optim = make(mesh, train=True)
        before = type(optim.state[model.scale]["momentum_buffer"]).__name__
        osd = get_optimizer_state_dict(model, optim, options=full)
        fresh, fresh_optim = make(mesh, train=False)
        set_optimizer_state_dict(fresh, fresh_optim, osd, options=full)
        after = type(fresh_optim.state[fresh.scale]["momentum_buffer"]).__name__
        print(f"momentum_buffer of the 0-d DTensor parameter: {before} before the round trip, {after} after")
        return 0 if after == before else 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
