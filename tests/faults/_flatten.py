"""Flat form: the keys ``flatten_optimizer_state_dict`` writes, and what a flat set makes of them."""

from __future__ import annotations

import torch

from osdconform import reference as ref
from osdconform.backends.reference import ReferenceBackend


class FlatRoundTripAddsEmptyState(ReferenceBackend):
    """pytorch/pytorch#192225: a flat round trip of plain SGD added an empty
    state entry for every parameter that had none.

    Over the reference (torch-dsd has this bug itself: an expected failure
    there): a flat set leaves an empty entry for every parameter without state.
    """

    name = "flat-round-trip-adds-empty-state"
    over = "reference"
    reports = ("pytorch/pytorch#192225",)

    def set_optimizer_state(self, workload, osd, options):
        super().set_optimizer_state(workload, osd, options)
        if options.flatten:
            for opt in workload.optimizers:
                for group in opt.param_groups:
                    for p in group["params"]:
                        opt.state[p]  # a defaultdict: reading makes an empty entry


class FlatKeysCollideAcrossOptimizers(ReferenceBackend):
    """pytorch/pytorch#126595 (pipeline stages) and huggingface/accelerate#3971:
    flat keys named parameters by their index within their own optimizer, so
    two optimizers (or stages) wrote the same keys and the last one won.

    Re-created over the reference: flat state keys are ``state.<index>.<key>``
    with the index counted per optimizer.
    """

    name = "flat-keys-collide-across-optimizers"
    over = "reference"
    reports = ("pytorch/pytorch#126595", "huggingface/accelerate#3971")

    def get_optimizer_state(self, workload, options):
        osd = super().get_optimizer_state(workload, options)
        if not options.flatten:
            return osd
        layout = ref.group_layout(workload.module, workload.optimizers)
        index = {}
        first = 0
        for opt in workload.optimizers:
            fqns = [f for g in layout[first:first + len(opt.param_groups)] for f in g]
            index.update({f: i for i, f in enumerate(fqns)})
            first += len(opt.param_groups)
        out = {}
        for key, value in osd.items():
            fqn = next((f for f in sorted(index, key=len, reverse=True) if key.startswith(f"state.{f}.")), None)
            out[key if fqn is None else f"state.{index[fqn]}.{key[len(f'state.{fqn}.'):]}"] = value
        return out

    def set_optimizer_state(self, workload, osd, options):
        if not options.flatten:
            return super().set_optimizer_state(workload, osd, options)
        layout = ref.group_layout(workload.module, workload.optimizers)
        names = {}
        first = 0
        for opt in workload.optimizers:
            fqns = [f for g in layout[first:first + len(opt.param_groups)] for f in g]
            for i, f in enumerate(fqns):
                names.setdefault(str(i), []).append(f)
            first += len(opt.param_groups)
        out = {}
        for key, value in osd.items():
            parts = key.split(".", 2)
            if parts[0] == "state" and parts[1] in names:
                for f in names[parts[1]]:
                    out[f"state.{f}.{parts[2]}"] = value.clone() if isinstance(value, torch.Tensor) else value
            else:
                out[key] = value
        super().set_optimizer_state(workload, out, options)
