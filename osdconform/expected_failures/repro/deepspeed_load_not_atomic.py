"""DeepSpeed ZeRO: a load_checkpoint that fails on a damaged optimizer-state file
has already replaced the module's weights.

load_checkpoint reads mp_rank_00_model_states.pt and loads the weights into the
module first, then reads the ZeRO optimizer state file; when that one is damaged
it raises, leaving the model with the checkpoint's weights and the optimizer
with its old state: a half-loaded job.

Run: python deepspeed_load_not_atomic.py  (one process, gloo, CPU)
Exits 1 while the defect exists, 0 once fixed.
"""
import os
import sys
import tempfile

import torch
import torch.distributed as dist

os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", "29563")
os.environ.setdefault("LOCAL_RANK", "0")
dist.init_process_group("gloo", rank=0, world_size=1)
import deepspeed  # noqa: E402

deepspeed.init_distributed(dist_backend="gloo")
CONFIG = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 2},
          "zero_allow_untested_optimizer": True}


def engine(seed):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    eng, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.Adam(model.parameters()), config=CONFIG)
    return model, eng


_, src = engine(0)
src.backward(src(torch.randn(2, 3)).sum())
src.step()
with tempfile.TemporaryDirectory() as d:
    src.save_checkpoint(d, tag="t")
    optim_file = os.path.join(d, "t", "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    with open(optim_file, "r+b") as fh:
        fh.truncate(os.path.getsize(optim_file) // 2)  # a checkpoint cut short
    model, dst = engine(1)
    before = model.weight.detach().clone()
    try:
        dst.load_checkpoint(d, tag="t")
    except Exception as exc:  # noqa: BLE001
        print(f"the load raised, as it should: {type(exc).__name__}")
    else:
        print("the load accepted a truncated optimizer state file")
        sys.exit(1)
    if torch.equal(before, model.weight.detach()):
        print("fixed: the failed load left the weights as they were")
        code = 0
    else:
        print("BUG: the failed load replaced the module's weights")
        code = 1
dist.destroy_process_group()
sys.exit(code)
