"""Bad input accepted, or refused without saying what is wrong."""

from __future__ import annotations

from osdconform import reference as ref
from osdconform.backends.reference import ReferenceBackend

from ._kit import map_entries, nested


class AcceptsStateOfWrongShape(ReferenceBackend):
    """pytorch/pytorch#192224: a set accepted state whose shape did not match
    its parameter's and left the optimizer with it (or without it), silently.

    Over the reference (torch-dsd has this itself, an expected failure there):
    a full set drops, without a word, state whose shape is not its parameter's.
    """

    name = "accepts-state-of-wrong-shape"
    over = "reference"
    reports = ("pytorch/pytorch#192224",)

    def set_optimizer_state(self, workload, osd, options):
        if nested(osd) and options.full:
            shapes = {fqn: tuple(p.shape) for fqn, p in workload.module.named_parameters()}

            def fits(fqn, entry):
                return {k: v for k, v in entry.items()
                        if not hasattr(v, "shape") or v.dim() == 0 or tuple(v.shape) == shapes.get(fqn)}

            osd = map_entries(osd, fits)
        super().set_optimizer_state(workload, osd, options)


class ErrorNamesNoKey(ReferenceBackend):
    """pytorch/pytorch#132628: a load refused a broken state dict with an error
    that named neither the key nor the parameter at fault.
    """

    name = "error-names-no-key"
    over = "reference"
    reports = ("pytorch/pytorch#132628",)

    def set_optimizer_state(self, workload, osd, options):
        try:
            super().set_optimizer_state(workload, osd, options)
        except ref.OSDLoadError:
            raise RuntimeError("loading the optimizer state dict failed") from None


class UnknownKeysIgnored(ReferenceBackend):
    """pytorch/pytorch#125177: a load ignored state for parameters the model
    does not have (a renamed or removed layer) instead of refusing it.
    """

    name = "unknown-keys-ignored"
    over = "reference"
    reports = ("pytorch/pytorch#125177",)

    def set_optimizer_state(self, workload, osd, options):
        if nested(osd):
            known = {fqn for fqn, _ in workload.module.named_parameters()}
            osd = map_entries(osd, lambda fqn, e: e if fqn in known else None)
            osd["param_groups"] = [{**g, "params": [f for f in g["params"] if f in known]}
                                   for g in osd["param_groups"]]
        super().set_optimizer_state(workload, osd, options)
