"""A get with side effects: asking for the state changes it."""

from __future__ import annotations

import torch

from osdconform.backends.torch_dsd import TorchDSDBackend

from ._kit import live_entries


class GetAdvancesStep(TorchDSDBackend):
    """pytorch/pytorch#164929: getting the optimizer state dict changed the
    live optimizer (its state was initialised or advanced by the get).

    Re-created: a get adds one to every live ``step`` after reading it.
    """

    name = "get-advances-step"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#164929",)

    def get_optimizer_state(self, workload, options):
        osd = super().get_optimizer_state(workload, options)
        with torch.no_grad():
            for _, entry in live_entries(workload):
                step = entry.get("step")
                if isinstance(step, torch.Tensor):
                    step.add_(1)
                elif step is not None:
                    entry["step"] = step + 1
        return osd
