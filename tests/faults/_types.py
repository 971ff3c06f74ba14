"""Type and placement: the loaded state is right in value but not in kind."""

from __future__ import annotations

import torch

from osdconform.backends.torch_dsd import TorchDSDBackend

from ._kit import live_entries


class MomentsNoLongerDTensors(TorchDSDBackend):
    """pytorch/pytorch#126950: after a set, the moments of DTensor parameters
    were plain local tensors, no longer DTensors.
    """

    name = "moments-no-longer-dtensors"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#126950",)

    def set_optimizer_state(self, workload, osd, options):
        super().set_optimizer_state(workload, osd, options)
        for _, entry in live_entries(workload):
            for key, value in list(entry.items()):
                if key != "step" and hasattr(value, "to_local"):
                    entry[key] = value.to_local()


class StepCastToFloat64(TorchDSDBackend):
    """pytorch/pytorch PR#173901: a load cast the ``step`` tensors to float64.

    Re-created: after a set every tensor ``step`` is float64.
    """

    name = "step-cast-to-float64"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#173901",)

    def set_optimizer_state(self, workload, osd, options):
        super().set_optimizer_state(workload, osd, options)
        for _, entry in live_entries(workload):
            if isinstance(entry.get("step"), torch.Tensor):
                entry["step"] = entry["step"].to(torch.float64)
