"""torch-dsd: a full set of several optimizers whose checkpoint holds no state raises KeyError.

Two SGD optimizers: the first has a plain group for the used parameters and a
momentum group for a parameter of an unused branch (it never gets a gradient),
the second is plain SGD.  After a training step none of them holds state, so
``get_optimizer_state_dict(full_state_dict=True)`` returns an OSD with empty
``state`` and three param groups.  ``set_optimizer_state_dict`` with the same
options into fresh objects first gives them state by a zero-gradient step (a
momentum buffer for the unused parameter), then splits the OSD per optimizer:
``_split_optim_state_dict`` returns an OSD without any state unchanged, so
each optimizer is handed all three groups and the re-mapping of the flattened
dict fails with ``KeyError: 'param_groups.2.lr'``.  A checkpoint
``get_optimizer_state_dict`` itself wrote cannot be loaded.  (With a single
optimizer the same checkpoint loads, keeping the extra state: the
``torch_dsd_set_creates_state_the_checkpoint_lacks.py`` defect.)
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict, set_optimizer_state_dict


def build():
    torch.manual_seed(0)
    model = nn.ModuleDict({"a": nn.Linear(1, 1, bias=False), "b": nn.Linear(1, 1), "unused": nn.Linear(1, 1, bias=False)})
    first = torch.optim.SGD(
        [{"params": [model.a.weight, model.b.weight]}, {"params": [model.unused.weight], "momentum": 0.9}], lr=0.1
    )
    second = torch.optim.SGD([model.b.bias], lr=0.1)
    return model, [first, second]


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29561")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model, optims = build()
        model.b(model.a(torch.ones(1, 1))).sum().backward()  # 'unused' gets no gradient
        for opt in optims:
            opt.step()
        full = StateDictOptions(full_state_dict=True)
        osd = get_optimizer_state_dict(model, optims, options=full)
        assert osd["state"] == {} and len(osd["param_groups"]) == 3
        model2, optims2 = build()
        try:
            set_optimizer_state_dict(model2, optims2, osd, options=full)
        except KeyError as exc:
            print(f"BUG: the full set of a checkpoint without state fails: KeyError: {exc}")
            return 1
        print("ok: the checkpoint loads")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
