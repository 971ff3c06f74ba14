"""Faults only mixed precision shows: state kept in the dtype the model computes in.

The full space runs FSDP plans in mixed precision (``PlanSpec.mixed_precision``,
chosen by the seed: ``strategies._plans.dressed_by_seed``), so this fault is
in the corpus; ``test_fidelity.py::test_fidelity[full]`` catches it ("dtype
differs"), and only on an example that computes in bfloat16.
"""

from __future__ import annotations

import torch

from osdconform.backends.torch_dsd import TorchDSDBackend
from osdconform.scenario._plans import MIXED_PRECISION

from ._kit import map_entries, nested


def _in_compute_dtype(fqn: str, entry: dict) -> dict:
    dtype = getattr(torch, MIXED_PRECISION["param_dtype"])
    return {
        k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() and k != "step" else v
        for k, v in entry.items()
    }


class StateSavedInComputeDtype(TorchDSDBackend):
    """Under mixed precision, hands out the optimizer's state in the dtype the
    model computes in (bfloat16), not the float32 the optimizer keeps.

    The class of vllm-project/speculators#899 (a trainer under FSDP2's
    ``MixedPrecisionPolicy(param_dtype=bfloat16)`` saved its optimizer state in
    bfloat16; the fix saves and loads it at full precision) and of the "fp32
    master state" bugs of mixed-precision training generally: the moments lose
    16 bits of mantissa at every save, and a resumed run steps from rounded
    state.  Its own round trip passes: ``Optimizer.load_state_dict`` casts the
    bfloat16 values back to the float32 parameters' dtype, and the next get
    rounds them to the same bfloat16.

    Re-created: get casts every floating state tensor but ``step`` to
    bfloat16 when the scenario's plan computes in mixed precision.
    """

    name = "state-saved-in-compute-dtype"
    over = "torch-dsd"
    reports = ("vllm-project/speculators#899",)

    def get_optimizer_state(self, workload, options):
        osd = super().get_optimizer_state(workload, options)
        if nested(osd) and workload.scenario.plan.mixed_precision:
            return map_entries(osd, _in_compute_dtype)
        return osd

