"""Stateless optimizers (plain SGD): a checkpointer that assumes every optimizer has state."""

from __future__ import annotations

from osdconform.backends.reference import ReferenceBackend
from osdconform.backends.torch_dsd import TorchDSDBackend

from ._kit import keep_target_keys, nested


class StatelessGroupsNotLoaded(ReferenceBackend):
    """pytorch/pytorch#133415: with an optimizer that keeps no state (plain
    SGD), ``set_optimizer_state_dict`` did not load its param_groups.

    Re-created over the reference (torch-dsd 2.13 cannot load a checkpoint
    without state at all: T07's assertion in the full form, the strict
    missing-state error in the sharded one, both expected failures, so a
    fault over it has no load to spoil): a set of an OSD without any state
    keeps the target's group values.
    """

    name = "stateless-groups-not-loaded"
    over = "reference"
    reports = ("pytorch/pytorch#133415",)

    def set_optimizer_state(self, workload, osd, options):
        if nested(osd) and not any(osd["state"].values()):
            keep_target_keys(workload, lambda: ReferenceBackend.set_optimizer_state(self, workload, osd, options),
                             lambda key, value: True)
        else:
            super().set_optimizer_state(workload, osd, options)


class StatelessGetFails(TorchDSDBackend):
    """pytorch/pytorch#111499: getting the state dict of an optimizer without
    state raised (a ``KeyError`` on the missing ``state`` of a parameter).
    """

    name = "stateless-get-fails"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#111499",)

    def get_optimizer_state(self, workload, options):
        for opt in workload.optimizers:
            if not opt.state:
                raise KeyError(f"'state': {type(opt).__name__} has no state to get")
        return super().get_optimizer_state(workload, options)
