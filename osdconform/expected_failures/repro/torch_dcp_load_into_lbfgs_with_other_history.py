"""torch-dcp: an LBFGS checkpoint does not load into an LBFGS that has stepped another number of times.

LBFGS keeps its curvature history as Python lists (``old_dirs``, ``old_stps``,
``ro``, ``al``) whose length is the number of updates it made so far, and
``al`` starts as ``[None] * history_size``, filled as the history grows.  The
load recipe takes its template from ``get_optimizer_state_dict`` of the live
target, so the template's lists have the *target's* lengths and Nones: when
the job loads a checkpoint into an LBFGS that already stepped (a rollback,
or loading while an async save of the live state is in flight), an entry that
is a tensor in the checkpoint and None in the target makes ``dcp.load`` raise
("Invalid checkpoint metadata for ...al.N, expected BytesStorageMetadata but
found TensorStorageMetadata"), and one the target has and the checkpoint
lacks is "Missing key".  The checkpoint is valid; only the live target's
history decides whether it loads.
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict


def trained(seed: int, max_iter: int):
    """An LBFGS after one step of up to `max_iter` inner iterations (each adds one history entry)."""
    torch.manual_seed(seed)
    model = nn.Linear(4, 1)
    optim = torch.optim.LBFGS(model.parameters(), max_iter=max_iter)
    x, y = torch.randn(8, 4), torch.randn(8, 1)

    def closure():
        optim.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    optim.step(closure)
    return model, optim


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29594")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model, optim = trained(0, max_iter=4)  # a longer history
        target, target_optim = trained(1, max_iter=3)  # the live job: a shorter one
        lengths = [len(o.state[next(iter(o.state))]["old_dirs"]) for o in (optim, target_optim)]
        with tempfile.TemporaryDirectory() as tmp:
            dcp.save({"optim": get_optimizer_state_dict(model, optim)}, checkpoint_id=tmp)
            state = {"optim": get_optimizer_state_dict(target, target_optim)}
            try:
                dcp.load(state, checkpoint_id=tmp)
                set_optimizer_state_dict(target, target_optim, state["optim"])
            except BaseException as exc:  # CheckpointException derives from BaseException
                print(f"BUG: an LBFGS checkpoint (history of {lengths[0]}) does not load into an LBFGS "
                      f"with a history of {lengths[1]}: {type(exc).__name__}: {str(exc)[-300:]}")
                return 1
    finally:
        dist.destroy_process_group()
    print("fixed: the checkpoint loads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
