"""Round trip and fidelity, as run on every rank of a world.

Each function here is a task for `WorldPool.run`: it gets the rank's context
and the (picklable) scenario, backend spec and options, builds fresh objects,
and raises `OSDMismatch` (an AssertionError) where the property does not hold.
Phases are reported as they start, so a hang is attributed to one of them.

Why two checks in the round trip: comparing the backend's own ``get`` before
and after a ``set`` cannot see a pair of faults that cancel out (a ``get`` that
drops a key and a ``set`` that ignores its input agree with each other).  So
the loaded optimizer is also judged by the reference: the reference gather of
its live state must equal the reference gather of the source's.
"""

from __future__ import annotations

from typing import Any

from .. import reference as ref
from ..backends import StateOptions, make_backend
from ..compare import assert_osd_equal
from ..scenario import Scenario, build_workload, train

#: Fresh objects are initialised with this offset from the scenario seed, so
#: they differ from the source in every parameter.
FRESH_SEED_OFFSET = 7919


def _source(ctx, scenario: Scenario):
    with ctx.phase("build"):
        src = build_workload(scenario, rank=ctx.rank, device=ctx.device)
    with ctx.phase("train"):
        train(src, scenario.steps)
    return src


def _fresh(ctx, scenario: Scenario):
    with ctx.phase("build fresh"):
        return build_workload(
            scenario, rank=ctx.rank, device=ctx.device, init_seed=scenario.seed + FRESH_SEED_OFFSET
        )


def _summary(osd: dict) -> dict[str, Any]:
    return {"state_entries": len(osd.get(ref.STATE, {})), "groups": len(osd.get(ref.PARAM_GROUPS, []))}


def roundtrip(ctx, scenario: Scenario, backend_spec: str, options: StateOptions) -> dict:
    """get -> set into fresh objects -> get gives an equal OSD; live states agree."""
    backend = make_backend(backend_spec)
    src = _source(ctx, scenario)
    with ctx.phase("get"):
        first = backend.get_optimizer_state(src, options)
    with ctx.phase("reference gather (source)"):
        src_live = ref.full_osd(src.module, src.optimizers)
    dst = _fresh(ctx, scenario)
    with ctx.phase("set"):
        backend.set_optimizer_state(dst, first, options)
    with ctx.phase("get after set"):
        second = backend.get_optimizer_state(dst, options)
    with ctx.phase("reference gather (loaded)"):
        dst_live = ref.full_osd(dst.module, dst.optimizers)
    with ctx.phase("compare"):
        _assert_all_equal(
            [
                (first, second, "round trip (backend get before vs after set)"),
                (src_live, dst_live, "round trip (reference gather of source vs loaded optimizer)"),
            ]
        )
    return _summary(src_live)


def _assert_all_equal(pairs) -> None:
    """Compare every pair's ``state`` first, then their ``param_groups``, then the rest.

    So a known hyperparameter defect (an expected failure matched on its
    message) can never hide a difference in the tensors.
    """
    for section in (ref.STATE, ref.PARAM_GROUPS):
        for expected, actual, context in pairs:
            if isinstance(expected, dict) and isinstance(actual, dict) and section in expected and section in actual:
                assert_osd_equal(
                    {section: expected[section]}, {section: actual[section]}, context=context
                )
    for expected, actual, context in pairs:
        assert_osd_equal(expected, actual, context=context)


def fidelity(ctx, scenario: Scenario, backend_spec: str, options: StateOptions) -> dict:
    """The backend's full OSD equals the reference gather of the live local state.

    The reference gathers *after* the backend's get, so a get that changes the
    optimizer (a side effect: a separate property) is not blamed here.
    """
    backend = make_backend(backend_spec)
    src = _source(ctx, scenario)
    with ctx.phase("get"):
        got = backend.get_optimizer_state(src, options)
    with ctx.phase("reference gather"):
        expected = ref.full_osd(src.module, src.optimizers)
        if options.flatten:
            expected = ref.flatten(expected)
    with ctx.phase("compare"):
        assert_osd_equal(expected, got, context="fidelity (reference gather vs backend full get)")
    return _summary(expected)
