"""The ``fsdp1`` backend: ``FSDP.optim_state_dict`` / ``FSDP.optim_state_dict_to_load``.

FSDP1's own optimizer-state API, for models wrapped with
``FullyShardedDataParallel`` (plan ``fsdp1``).  The full form uses
``FULL_STATE_DICT`` (every rank receives the whole OSD: ``rank0_only=False``),
the sharded form ``SHARDED_STATE_DICT`` (``ShardedTensor`` values), or
``LOCAL_STATE_DICT`` in the ``fsdp1-local`` backend; the ``cpu_offload``
option is FSDP1's ``offload_to_cpu`` with ``rank0_only`` on a full get.  FSDP1
takes one optimizer per call; several are handled one by one and merged
(state keyed by FQN, param_groups concatenated), as `Workload` documents.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..scenario import Workload
from ._native import split_osd
from ._protocol import Capabilities, StateOptions


@contextlib.contextmanager
def _state_dict_type(model, full: bool, cpu_offload: bool = False, local: bool = False):
    from torch.distributed.fsdp import (
        FullOptimStateDictConfig,
        FullStateDictConfig,
        LocalOptimStateDictConfig,
        LocalStateDictConfig,
        ShardedOptimStateDictConfig,
        ShardedStateDictConfig,
        StateDictType,
    )
    from torch.distributed.fsdp import (
        FullyShardedDataParallel as FSDP,
    )

    if local:
        with FSDP.state_dict_type(
            model, StateDictType.LOCAL_STATE_DICT, LocalStateDictConfig(), LocalOptimStateDictConfig()
        ):
            yield
    elif full:
        with FSDP.state_dict_type(
            model,
            StateDictType.FULL_STATE_DICT,
            FullStateDictConfig(rank0_only=False),
            # offload_to_cpu defaults to True; here only with the cpu_offload
            # option, which also means "rank 0 only" (as torch-dsd's does).
            FullOptimStateDictConfig(offload_to_cpu=cpu_offload, rank0_only=cpu_offload),
        ):
            yield
    else:
        with FSDP.state_dict_type(
            model, StateDictType.SHARDED_STATE_DICT, ShardedStateDictConfig(), ShardedOptimStateDictConfig()
        ):
            yield


class FSDP1Backend:
    name = "fsdp1"
    capabilities = Capabilities(full=True, sharded=True, cpu_offload=True, plans=frozenset({"fsdp1"}))
    local = False

    def get_optimizer_state(self, workload: Workload, options: StateOptions) -> dict[str, Any]:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        out = {"state": {}, "param_groups": []}
        empty = False
        with _state_dict_type(workload.model, options.full, options.cpu_offload, self.local):
            for optim in workload.optimizers:
                # Every rank calls it for every optimizer: it runs collectives.
                osd = FSDP.optim_state_dict(workload.model, optim)
                if not osd:  # rank0_only (cpu_offload): the other ranks get an empty dict
                    empty = True
                    continue
                out["state"].update(osd["state"])
                out["param_groups"] += osd["param_groups"]
        return {} if empty else out

    def set_optimizer_state(self, workload: Workload, osd: dict[str, Any], options: StateOptions) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        parts = split_osd(osd, [len(optim.param_groups) for optim in workload.optimizers])
        # Every rank passes the full OSD to a set (see `StateOptions`), so no rank0_only there.
        with _state_dict_type(workload.model, options.full, local=self.local):
            for optim, part in zip(workload.optimizers, parts):
                optim.load_state_dict(FSDP.optim_state_dict_to_load(workload.model, optim, part))


class FSDP1LocalBackend(FSDP1Backend):
    """``LOCAL_STATE_DICT``: FSDP1's third state dict type, sharded form only.

    For the optimizer, torch treats it as "not full" (`FSDP.optim_state_dict`
    passes ``full_state_dict=False``), so it should give what SHARDED gives; a
    backend of its own keeps the two apart in the conformance matrix.
    """

    name = "fsdp1-local"
    capabilities = Capabilities(full=False, sharded=True, plans=frozenset({"fsdp1"}))
    local = True
