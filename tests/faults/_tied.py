"""Tied parameters: one Parameter under two names."""

from __future__ import annotations

from osdconform.backends.torch_dsd import TorchDSDBackend

from ._kit import map_entries, nested


def tied_fqns(module) -> set[str]:
    """Canonical FQNs of parameters that appear under more than one name."""
    seen: dict[int, list[str]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        seen.setdefault(id(p), []).append(name)
    return {names[0] for names in seen.values() if len(names) > 1}


class TiedParamStateDropped(TorchDSDBackend):
    """pytorch/pytorch#128011 and pytorch/torchtitan#594: the optimizer state
    of tied parameters (shared embedding and output weights) was not loaded.

    Re-created: set leaves out the state of every tied parameter.
    """

    name = "tied-param-state-dropped"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#128011", "pytorch/torchtitan#594")

    def set_optimizer_state(self, workload, osd, options):
        if nested(osd):
            tied = tied_fqns(workload.module)
            osd = map_entries(osd, lambda fqn, e: None if fqn in tied else e)
        super().set_optimizer_state(workload, osd, options)
