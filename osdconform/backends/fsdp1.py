"""The ``fsdp1`` backend: ``FSDP.optim_state_dict`` / ``FSDP.optim_state_dict_to_load``.

FSDP1's own optimizer-state API, for models wrapped with
``FullyShardedDataParallel`` (plan ``fsdp1``).  The full form uses
``FULL_STATE_DICT`` (every rank receives the whole OSD: ``rank0_only=False``),
the sharded form ``SHARDED_STATE_DICT`` (``ShardedTensor`` values).  FSDP1
takes one optimizer per call; several are handled one by one and merged
(state keyed by FQN, param_groups concatenated), as `Workload` documents.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..scenario import Workload
from ._protocol import Capabilities, StateOptions


@contextlib.contextmanager
def _state_dict_type(model, full: bool):
    from torch.distributed.fsdp import (
        FullOptimStateDictConfig,
        FullStateDictConfig,
        FullyShardedDataParallel as FSDP,
        ShardedOptimStateDictConfig,
        ShardedStateDictConfig,
        StateDictType,
    )

    if full:
        with FSDP.state_dict_type(
            model,
            StateDictType.FULL_STATE_DICT,
            FullStateDictConfig(rank0_only=False),
            FullOptimStateDictConfig(rank0_only=False),
        ):
            yield
    else:
        with FSDP.state_dict_type(
            model, StateDictType.SHARDED_STATE_DICT, ShardedStateDictConfig(), ShardedOptimStateDictConfig()
        ):
            yield


class FSDP1Backend:
    name = "fsdp1"
    capabilities = Capabilities(full=True, sharded=True, plans=frozenset({"fsdp1"}))

    def get_optimizer_state(self, workload: Workload, options: StateOptions) -> dict[str, Any]:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        out = {"state": {}, "param_groups": []}
        with _state_dict_type(workload.model, options.full):
            for optim in workload.optimizers:
                osd = FSDP.optim_state_dict(workload.model, optim)
                out["state"].update(osd["state"])
                out["param_groups"] += osd["param_groups"]
        return out

    def set_optimizer_state(self, workload: Workload, osd: dict[str, Any], options: StateOptions) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        first = 0
        with _state_dict_type(workload.model, options.full):
            for optim in workload.optimizers:
                n = len(optim.param_groups)
                groups = osd["param_groups"][first:first + n]
                fqns = {f for g in groups for f in g["params"]}
                part = {"state": {f: s for f, s in osd["state"].items() if f in fqns}, "param_groups": groups}
                optim.load_state_dict(FSDP.optim_state_dict_to_load(workload.model, optim, part))
                first += n
