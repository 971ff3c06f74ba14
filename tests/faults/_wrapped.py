"""Faults only a wrapped model shows: keys that keep the wrappers' names.

The full space draws wrapped models (``strategies._plans.wrapped_by_seed``),
so this fault is in the corpus; ``test_fidelity.py::test_fidelity[full]``
catches it ("OSD mismatch ... _checkpoint_wrapped_module" / "_orig_mod"),
and only on an example whose model is wrapped.
"""

from __future__ import annotations

from osdconform import reference as ref
from osdconform.backends.torch_dsd import TorchDSDBackend

from ._kit import fqn_of, nested

#: The wrapper segments a user never wrote (activation checkpointing, torch.compile).
_WRAPPER_SEGMENTS = ("_checkpoint_wrapped_module", "_orig_mod")


def _raw_names(workload) -> dict[str, str]:
    """``user FQN -> the name the module itself gives the parameter``, for the
    parameters whose name holds a checkpoint or compile wrapper's segment
    (FSDP1's own segment dropped: that part torch-dsd strips correctly here)."""
    names = fqn_of(workload)
    raw = {}
    for name, p in workload.module.named_parameters(remove_duplicate=False):
        name = ".".join(part for part in name.split(".") if part != "_fsdp_wrapped_module")
        fqn = names.get(id(p))
        if fqn and fqn not in raw and any(seg in name.split(".") for seg in _WRAPPER_SEGMENTS):
            raw[fqn] = name
    return raw


def _rekey(osd: dict, names: dict[str, str]) -> dict:
    """A copy of nested `osd` whose state keys and group params are renamed by `names`."""
    state = {names.get(k, k): v for k, v in osd[ref.STATE].items()}
    groups = [{**g, ref.PARAMS: [names.get(f, f) for f in g[ref.PARAMS]]} for g in osd[ref.PARAM_GROUPS]]
    return {**osd, ref.STATE: state, ref.PARAM_GROUPS: groups}


class WrapperNamesInKeys(TorchDSDBackend):
    """Keys a wrapped model's state by the module's own parameter names,
    ``layers.0._checkpoint_wrapped_module.weight`` or ``_orig_mod.layers.0.weight``,
    not the user's ``layers.0.weight``; its set takes those names back, so its
    own round trip passes.

    The class of pytorch/pytorch#124546 (activation checkpointing's prefix in
    the optimizer state dict's keys) and torchtitan#2622 (``_orig_mod`` of a
    block compiled inside a checkpoint wrapper, still in torch 2.13: this
    project's T63).  A checkpoint so keyed does not load into the same model
    unwrapped, or wrapped another way, and is not what the reference keys:
    fidelity shows it, and only on a model with a wrapper.

    Re-created: get renames every wrapped parameter's key to its raw module
    path; set renames them back before loading.
    """

    name = "wrapper-names-in-keys"
    over = "torch-dsd"
    reports = ("pytorch/pytorch#124546", "pytorch/torchtitan#2622")

    def get_optimizer_state(self, workload, options):
        osd = super().get_optimizer_state(workload, options)
        return _rekey(osd, _raw_names(workload)) if nested(osd) else osd

    def set_optimizer_state(self, workload, osd, options):
        if nested(osd):
            osd = _rekey(osd, {raw: fqn for fqn, raw in _raw_names(workload).items()})
        super().set_optimizer_state(workload, osd, options)
