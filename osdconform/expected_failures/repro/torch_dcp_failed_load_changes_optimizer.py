"""torch-dcp: a dcp.load that fails on a damaged file has already changed the optimizer.

torch's documented recipe loads optimizer state in place: take a template
with ``get_optimizer_state_dict`` (whose tensors are the optimizer's own),
``dcp.load`` into it, then ``set_optimizer_state_dict``.  When a data file of
the checkpoint is cut short, ``dcp.load`` raises
``CheckpointException``, but only after it has read part of the state into
the template, that is into the live optimizer: the job that catches the
error (to fall back to an older checkpoint, say) goes on with an optimizer
that is neither its own nor the checkpoint's.  A load that fails should
leave the optimizer as it was.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict


def trained(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Linear(64, 64)
    optim = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(8, 64)).sum().backward()
    optim.step()
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29587")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model, optim = trained(0)
        with tempfile.TemporaryDirectory() as tmp:
            dcp.save({"optim": get_optimizer_state_dict(model, optim)}, checkpoint_id=tmp)
            data = max((f for f in os.listdir(tmp) if f.endswith(".distcp")),
                       key=lambda f: os.path.getsize(os.path.join(tmp, f)))
            path = os.path.join(tmp, data)
            size = os.path.getsize(path)
            with open(path, "r+b") as fh:  # cut the data short: the last tensors are missing
                fh.truncate(size * 2 // 3)
            target, target_optim = trained(1)
            before = {k: v.clone() for k, v in target_optim.state[target.weight].items()}
            try:
                state = {"optim": get_optimizer_state_dict(target, target_optim)}
                dcp.load(state, checkpoint_id=tmp)
                set_optimizer_state_dict(target, target_optim, state["optim"])
            except BaseException as exc:  # CheckpointException derives from BaseException
                print(f"dcp.load raised {type(exc).__name__}")
            else:
                print("dcp.load accepted a damaged file")
                return 1
        after = target_optim.state[target.weight]
        changed = [k for k in before if not torch.equal(before[k], after[k])]
    finally:
        dist.destroy_process_group()
    if changed:
        print(f"BUG: the failed load changed the optimizer's {changed} of weight")
        return 1
    print("fixed: the failed load left the optimizer as it was")
    return 0


if __name__ == "__main__":
    sys.exit(main())
