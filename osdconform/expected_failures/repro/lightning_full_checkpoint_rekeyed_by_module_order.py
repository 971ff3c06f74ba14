"""Lightning's ModelParallelStrategy (FSDP2) loads a full checkpoint's optimizer state into the wrong parameters.

A checkpoint written by ``fabric.save`` under a single-device or DDP strategy
holds ``optimizer.state_dict()``: state keyed by the index of each parameter in
the optimizer's param groups.  ``fabric.load`` under ``ModelParallelStrategy``
takes such a file (its "full checkpoint" path) and re-keys it by name with
``_rekey_optimizer_state_if_needed``, which calls
``FSDP.rekey_optim_state_dict(..., OptimStateKeyType.PARAM_NAME, module)``
without the optimizer, so index i is read as the i-th parameter of
``module.parameters()``.  When the param groups list the parameters in another
order than the module (here: the second layer's group first) each state lands
on another parameter: a shape error, or, with equal shapes, silently swapped
state.  Exits 1 while this happens (checked on lightning 2.6.6, torch 2.13.0, CPU).
"""

import os
import sys
import tempfile

import torch
from lightning.fabric import Fabric
from lightning.fabric.strategies import ModelParallelStrategy
from torch import nn
from torch.distributed.fsdp import fully_shard


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 2), nn.Linear(2, 1))
    # Param groups in another order than the module's parameters: the second layer first.
    opt = torch.optim.Adam([{"params": model[1].parameters()}, {"params": model[0].parameters()}])
    return model, opt


def parallelize(module, mesh):
    fully_shard(module, mesh=mesh["data_parallel"])
    return module


def main() -> int:
    path = os.path.join(tempfile.mkdtemp(), "checkpoint.ckpt")
    single = Fabric(accelerator="cpu", devices=1)
    raw, opt = build()
    model, opt = single.setup(raw, opt)
    single.backward(model(torch.ones(4, 1)).sum())
    opt.step()
    single.save(path, {"model": model, "optimizer": opt})
    saved = {name: opt.state[p]["exp_avg"].clone() for name, p in raw.named_parameters()}

    fsdp2 = Fabric(accelerator="cpu", devices=1, strategy=ModelParallelStrategy(parallelize, 1, 1))
    fsdp2.launch()
    model2, _ = build()
    model2 = fsdp2.setup_module(model2)
    inner = model2.module
    opt2 = fsdp2.setup_optimizers(
        torch.optim.Adam([{"params": inner[1].parameters()}, {"params": inner[0].parameters()}])
    )
    try:
        fsdp2.load(path, {"model": model2, "optimizer": opt2})
    except Exception as exc:
        print(f"BUG: fabric.load of a full checkpoint into ModelParallelStrategy failed: {exc!r}")
        return 1
    for name, p in inner.named_parameters():
        loaded = opt2.state[p]["exp_avg"].full_tensor()
        if loaded.shape != saved[name].shape or not torch.equal(loaded, saved[name]):
            print(f"BUG: {name}'s exp_avg is {loaded.tolist()}, saved {saved[name].tolist()}")
            return 1
    print("each parameter got its own state: fixed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
