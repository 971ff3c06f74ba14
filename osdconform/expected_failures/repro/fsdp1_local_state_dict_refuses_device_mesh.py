"""fsdp1-local: FSDP1's LOCAL_STATE_DICT refuses a model built with a device mesh.

``FullyShardedDataParallel(..., device_mesh=mesh)`` is how FSDP1 takes a
2-D replicate x shard mesh for ``HYBRID_SHARD`` (and it accepts a 1-D mesh
for the other strategies).  Such a model trains, but
``FSDP.optim_state_dict`` (and ``optim_state_dict_to_load``) under
``StateDictType.LOCAL_STATE_DICT`` raise ``RuntimeError: Found
state_dict_type LOCAL_STATE_DICT. DeviceMesh is not compatible with
LOCAL_STATE_DICT.`` (``_set_optim_use_dtensor``): the third state-dict type
of FSDP1, which torch treats as the sharded one for the optimizer, is
refused outright for every model given a mesh, so a hybrid-sharded model's
optimizer cannot be checkpointed in the local form.  A loud, deliberate
refusal (not a silent corruption); the same model without a mesh works.
Standalone: torch only, one process, gloo.  Exits 1 while the refusal holds.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import (
    FullyShardedDataParallel as FSDP,
)
from torch.distributed.fsdp import (
    LocalOptimStateDictConfig,
    LocalStateDictConfig,
    ShardingStrategy,
    StateDictType,
)


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29613")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        mesh = init_device_mesh("cpu", (1, 1), mesh_dim_names=("replicate", "shard"))
        model = FSDP(
            torch.nn.Linear(3, 2), sharding_strategy=ShardingStrategy.HYBRID_SHARD,
            use_orig_params=True, device_id=torch.device("cpu"), device_mesh=mesh,
        )
        optim = torch.optim.Adam(model.parameters(), lr=0.1)
        model(torch.randn(4, 3)).sum().backward()
        optim.step()
        with FSDP.state_dict_type(
            model, StateDictType.LOCAL_STATE_DICT, LocalStateDictConfig(), LocalOptimStateDictConfig()
        ):
            try:
                osd = FSDP.optim_state_dict(model, optim)
                optim.load_state_dict(FSDP.optim_state_dict_to_load(model, optim, osd))
            except RuntimeError as error:
                print(f"LOCAL_STATE_DICT with a device mesh refused: RuntimeError: {error}")
                return 1
        print("LOCAL_STATE_DICT with a device mesh: the optimizer state round-trips")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
