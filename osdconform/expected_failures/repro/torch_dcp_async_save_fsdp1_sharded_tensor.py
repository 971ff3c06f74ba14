"""torch-dcp: dcp.async_save cannot save FSDP1's sharded optimizer state at all.

Over FSDP1 (a sharded strategy, no device mesh) ``get_optimizer_state_dict``
returns each state entry with a dim as a ShardedTensor, as
``FSDP.optim_state_dict`` does for SHARDED_STATE_DICT.  ``dcp.save`` writes
that dict; ``dcp.async_save`` of the very same dict first stages it on the
CPU (``_state_dict_stager.StateDictStager.deepcopy_with_tensor_offload``),
whose ``_offload_tensor`` calls ``x.data_ptr()`` on every tensor, and
ShardedTensor's ``__torch_function__`` refuses that: "torch function
'data_ptr', with args: (ShardedTensor(...)) and kwargs: None not supported
for ShardedTensor!".  So the asynchronous save, documented as a drop-in for
``dcp.save``, fails on every rank for any FSDP1 optimizer that has state.
Standalone: torch only, two processes, gloo on CPU.  Exits 1 while the bug exists.
"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

WORLD = 2


def run(rank: int, directory: str, results) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29599")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        model = FSDP(torch.nn.Linear(4, 4), use_orig_params=True, device_id=torch.device("cpu"))
        optim = torch.optim.Adam(model.parameters(), lr=0.1)
        model(torch.randn(3, 4)).sum().backward()
        optim.step()
        state = {"optim": get_optimizer_state_dict(model, optim)}
        kinds = sorted({type(v).__name__ for st in state["optim"]["state"].values() for v in st.values()})
        dcp.save(state, checkpoint_id=os.path.join(directory, "sync"))  # the synchronous save works
        try:
            dcp.async_save(state, checkpoint_id=os.path.join(directory, "async")).result()
        except Exception as exc:  # noqa: BLE001
            text = str(exc)
            results[rank] = (kinds, "data_ptr ... not supported for ShardedTensor" if "data_ptr" in text else text[:300])
        else:
            results[rank] = (kinds, "")
    finally:
        dist.destroy_process_group()


def main() -> int:
    with tempfile.TemporaryDirectory() as directory, mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(run, args=(directory, results), nprocs=WORLD)
        results = dict(results)
    kinds, error = results[0]
    if any(err for _, err in results.values()):
        print(f"BUG: dcp.save took the OSD (state entries {kinds}), dcp.async_save raised: {error}")
        return 1
    print("fixed: dcp.async_save saves FSDP1's sharded optimizer state")
    return 0


if __name__ == "__main__":
    sys.exit(main())
