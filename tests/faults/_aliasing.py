"""Aliasing and identity: a get or a set that shares tensors with the caller."""

from __future__ import annotations

import torch

from osdconform.backends.reference import ReferenceBackend
from osdconform.backends.zero import ZeroBackend

from ._kit import live_entries


class GetReturnsLiveState(ReferenceBackend):
    """pytorch/pytorch#196083: the dict a get returned shared its tensors with
    the live optimizer, so changing the dict changed training.

    Over the reference (torch-dsd has this itself, an expected failure there):
    a full get of unsharded state returns the live tensors.
    """

    name = "get-returns-live-state"
    over = "reference"
    reports = ("pytorch/pytorch#196083",)

    def get_optimizer_state(self, workload, options):
        osd = super().get_optimizer_state(workload, options)
        if not options.full or options.flatten:
            return osd
        for fqn, entry in live_entries(workload):
            got = osd["state"].get(fqn, {})
            for key, value in entry.items():
                if isinstance(value, torch.Tensor) and not hasattr(value, "to_local") \
                        and isinstance(got.get(key), torch.Tensor) and got[key].shape == value.shape:
                    got[key] = value
        return osd


class SetKeepsCallerTensors(ZeroBackend):
    """pytorch/pytorch#147288: ``load_state_dict`` kept the caller's tensors
    rather than copies, so the caller's later changes reached the optimizer.

    Re-created over ZeroRedundancyOptimizer: after a set, every state tensor
    of the same shape is the caller's own.
    """

    name = "set-keeps-caller-tensors"
    over = "zero"
    reports = ("pytorch/pytorch#147288",)

    def set_optimizer_state(self, workload, osd, options):
        super().set_optimizer_state(workload, osd, options)
        for fqn, entry in live_entries(workload):
            given = osd["state"].get(fqn, {})
            for key, value in list(entry.items()):
                theirs = given.get(key)
                if isinstance(value, torch.Tensor) and isinstance(theirs, torch.Tensor) \
                        and theirs.shape == value.shape and theirs.dtype == value.dtype \
                        and theirs.device == value.device:
                    entry[key] = theirs
