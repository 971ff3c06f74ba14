"""Cross-device: save through storage in a world on one device, load in a world on the other.

A checkpoint written from CUDA is loaded on a CPU machine (to inspect or
evaluate it) and one written on CPU is loaded to resume on a GPU.  Some
defects exist only there: ``step`` left on the wrong device after a load with
fused or capturable Adam/AdamW (pytorch/pytorch#103256, #104767, #124133;
Lightning#13695), state restored to the device it was saved from.  So, like
reshard, two tasks in two worlds of the same size: `cross_device_save` in a
world on one device trains and saves, and hands the driver the reference
gather of the source (on the CPU, so the driver needs no CUDA context);
`cross_device_load` in a world on the other device loads into fresh objects
and compares the reference gather of the loaded optimizer with the source's
placed where torch's ``Optimizer.load_state_dict`` puts state (`placed`).

The scenario is drawn for the saving device; the loading side runs it with
the flags the other device takes (`scenario_on`): a user who trained with
``capturable=True`` on a GPU builds the CPU optimizer without it.  Storage
only: an in-memory OSD crosses no device boundary a user sees.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from .. import reference as ref
from ..backends import make_backend
from ..scenario import Scenario
from ..scenario._catalogue import flags_on
from ._steps import assert_all_equal, fresh, gather, load_state, save_state, source

#: The key torch keeps on the CPU unless a group is ``capturable`` or ``fused``.
STEP = "step"


def scenario_on(scenario: Scenario, device: str) -> Scenario:
    """`scenario` with each optimizer's flags cut to those torch takes on `device` (`flags_on`)."""
    optimizers = tuple(replace(o, flags=flags_on(o.name, o.flags, device)) for o in scenario.optimizers)
    return scenario if optimizers == scenario.optimizers else scenario.replace(optimizers=optimizers)


def placed(osd: dict, device: torch.device | str) -> dict:
    """The canonical full OSD `osd` as a correct load puts it on `device`.

    torch's ``Optimizer.load_state_dict`` (``_process_value_according_to_param_policy``)
    moves every state tensor to its parameter's device, except ``step`` of a
    group without ``capturable`` and ``fused``, which it leaves where it was:
    the CPU, where such groups keep it.  With either flag ``step`` goes to the
    parameter's device too.  The flags are read from the OSD's own groups (a
    load keeps the saved hyperparameters).  Values never change, nor do the
    param groups (a tensor lr stays where it was).
    """
    device = torch.device(device)
    cpu = torch.device("cpu")
    on_device_step = {
        fqn
        for group in osd.get(ref.PARAM_GROUPS, [])
        if group.get("capturable") or group.get("fused")
        for fqn in group.get(ref.PARAMS, [])
    }
    state = {
        fqn: {
            key: _to(value, cpu if key == STEP and fqn not in on_device_step else device)
            for key, value in entries.items()
        }
        for fqn, entries in osd.get(ref.STATE, {}).items()
    }
    return {**osd, ref.STATE: state}


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def cross_device_save(ctx, scenario: Scenario, backend_spec: str, options, directory: str) -> dict | None:
    """Train and save in this world (on its device); rank 0 hands back the source's gather, on the CPU."""
    backend = make_backend(backend_spec)
    src = source(ctx, scenario, backend)
    save_state(ctx, backend, src, options, directory)
    expected = gather(ctx, src, "source")
    return {"expected": placed(expected, "cpu")} if ctx.rank == 0 else None


def cross_device_load(ctx, scenario: Scenario, backend_spec: str, options, directory: str, expected: dict) -> None:
    """Load what the other device's world saved into fresh objects here; compare with `expected`."""
    backend = make_backend(backend_spec)
    dst = fresh(ctx, scenario, backend)
    load_state(ctx, backend, dst, None, options, directory)
    loaded = gather(ctx, dst, "loaded")
    with ctx.phase("compare"):
        assert_all_equal([
            (placed(expected, ctx.device), loaded,
             f"cross-device (reference gather of the source, placed on {ctx.device}, vs loaded optimizer)"),
        ])
