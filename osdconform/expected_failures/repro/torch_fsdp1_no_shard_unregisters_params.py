"""FSDP1 (use_orig_params=True, NO_SHARD or world 1): the root unit's parameters drop out of the module.

If the root FSDP unit's own parameters get no gradient in a backward (an
unused branch, or only frozen parameters), its post-backward hook never runs.
The catch-all reshard at the end of the backward then skips it: its
"already resharded" test (flat_param.data_ptr() == _local_shard.data_ptr(),
torch/distributed/fsdp/_runtime_utils.py _catch_all_reshard, cf.
pytorch/pytorch#83956) is always true under NO_SHARD, which FSDP also uses
at world 1.  So the plain-Tensor views the root's forward registered in place
of the original parameters stay: named_parameters() no longer yields those
parameters (the optimizer still holds them), and model.state_dict(),
FSDP.optim_state_dict and get_optimizer_state_dict all fail.  With FULL_SHARD
or SHARD_GRAD_OP at world 2 they stay registered.  Exits 1 while the bug exists.
"""

import functools
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = nn.Linear(2, 2)
        self.unused = nn.Linear(2, 2)  # in the root unit; never called

    def forward(self, x):
        return self.used(x)


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29546")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        m = Model()
        policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=lambda mod: mod is m.used)
        model = FSDP(m, auto_wrap_policy=policy, use_orig_params=True, device_id=torch.device("cpu"))
        optim = torch.optim.Adam(model.parameters(), lr=0.1)
        before = sorted(n for n, _ in m.named_parameters())
        model(torch.randn(3, 2)).sum().backward()
        optim.step()
        after = sorted(n for n, _ in m.named_parameters())
        print("named_parameters before:", before)
        print("named_parameters after: ", after)
        print("m.unused.weight is a", type(m.unused.weight).__name__)
        for what, call in [("model.state_dict()", model.state_dict),
                           ("FSDP.optim_state_dict", lambda: FSDP.optim_state_dict(model, optim))]:
            try:
                call()
                print(what, "worked")
            except Exception as error:  # noqa: BLE001
                print(what, "failed:", type(error).__name__, str(error)[:120])
        return 1 if after != before else 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
