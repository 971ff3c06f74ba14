"""torch-dsd: the flat form cannot carry LBFGS's state.

After a step, ``LBFGS`` keeps lists in its state (``old_dirs``, ``old_stps``,
``ro``, ``al``: its history).  ``get_optimizer_state_dict(...,
StateDictOptions(flatten_optimizer_state_dict=True))`` raises
``NotImplementedError: Flattening optimizer state_dict only supports tensor,
int, float, dict states now``, so an LBFGS checkpoint cannot be taken in the
flat form at all (the nested form works).
Standalone: torch only, one process, gloo.  Exits 1 while the bug exists.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29547")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        optim = torch.optim.LBFGS(model.parameters(), lr=0.1)
        x = torch.randn(4, 3)

        def closure():
            optim.zero_grad()
            loss = model(x).square().sum()
            loss.backward()
            return loss

        optim.step(closure)
        try:
            get_optimizer_state_dict(model, optim, options=StateDictOptions(flatten_optimizer_state_dict=True))
        except NotImplementedError as exc:
            print(f"get_optimizer_state_dict raised NotImplementedError: {exc}")
            return 1
        print("flattened")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
