"""The CUDA half, as far as a CPU can check it (issue 17).

* Optimizer flags follow the device: on ``cuda`` the core and full spaces draw
  ``fused`` and ``capturable`` (alone too) where torch takes them; on ``cpu``
  the core space draws no flag and no space draws ``capturable`` without
  ``fused``.  Strategies need no GPU: they are drawn here with ``device="cuda"``.
* The cross-device property's pieces: flags cut to the other device
  (`scenario_on`), where a correct load puts each state tensor (`placed`,
  checked with the ``meta`` device standing in for a second device), and its
  two steps end to end through torch-save in real worlds and real files, with
  both worlds on the CPU (the only device here).
* On a machine with CUDA, the flag rules are checked against torch itself on
  the GPU (`test_flag_rules_agree_with_torch_on_cuda`); here it is skipped.
"""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from hypothesis import HealthCheck, Phase, find, given, settings

from osdconform import properties
from osdconform import reference as ref
from osdconform import strategies as ost
from osdconform.backends import StateOptions
from osdconform.harness import WorldPool
from osdconform.scenario import GroupSpec, MLPSpec, OptimizerSpec, Scenario
from osdconform.scenario._catalogue import FLAGS, KNOWN, flags_on, flags_problem, installed_optimizers, kind_of

NO_GPU = "needs a CUDA device (run on a GPU machine)"
_FIND = settings(
    max_examples=2000, database=None, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate]
)
_DRAW = settings(max_examples=60, database=None, deadline=None, suppress_health_check=list(HealthCheck))


def _flags(scenario) -> list[tuple[str, tuple[str, ...]]]:
    return [(o.name, o.flags) for o in scenario.optimizers]


def _core(device, plan_kinds=("none", "ddp", "fsdp2")):
    return ost.core_scenarios(world_sizes=(1,), plan_kinds=plan_kinds, device=device)


# -- flags follow the device --------------------------------------------------------


@pytest.mark.parametrize("flags", [("fused",), ("capturable",), ("capturable", "fused")])
def test_core_space_on_cuda_draws_fused_and_capturable(flags):
    found = find(_core("cuda"), lambda s: s.optimizers[0].flags == flags, settings=_FIND)
    assert found.optimizers[0].name in ("adam", "adamw") or flags == ("fused",)


def test_core_space_on_cuda_draws_fused_sgd():
    find(_core("cuda", ("none",)), lambda s: _flags(s)[0] == ("sgd", ("fused",)), settings=_FIND)


@given(_core("cpu"))
@_DRAW
def test_core_space_on_cpu_draws_no_flag(scenario):
    assert all(o.flags == () for o in scenario.optimizers)


@given(_core("cuda", ("fsdp2",)))
@_DRAW
def test_core_space_on_cuda_keeps_fused_sgd_off_sharded_plans(scenario):
    assert all(not (o.name == "sgd" and "fused" in o.flags) for o in scenario.optimizers)


def test_full_space_on_cuda_draws_capturable_alone():
    found = find(
        ost.full_scenarios(world_sizes=(1,), device="cuda"),
        lambda s: any("capturable" in o.flags and "fused" not in o.flags for o in s.optimizers),
        settings=_FIND,
    )
    assert any(o.name != "sgd" for o in found.optimizers)


@given(ost.full_scenarios(world_sizes=(1,), device="cpu"))
@_DRAW
def test_full_space_on_cpu_never_draws_capturable_alone(scenario):
    for o in scenario.optimizers:
        assert "capturable" not in o.flags or "fused" in o.flags, o


@given(ost.full_scenarios(world_sizes=(1,), device="cuda"))
@_DRAW
def test_full_space_on_cuda_draws_only_what_cuda_takes(scenario):
    for o in scenario.optimizers:
        assert flags_problem(o.name, o.flags, "cuda") is None, o
        assert not (o.name == "adagrad" and "fused" in o.flags)


def test_cuda_flags_exist_in_the_constructors():
    """`CUDA_FLAGS` name only flags the constructors take (torch's signatures are the source)."""
    import inspect

    from osdconform.scenario._catalogue import CUDA_FLAGS, NOT_ON_CUDA

    for name, flags in {**CUDA_FLAGS, **NOT_ON_CUDA}.items():
        if name in installed_optimizers():
            params = set(inspect.signature(getattr(torch.optim, kind_of(name).cls_name)).parameters)
            assert flags <= params, (name, flags - params)


def test_a_spec_takes_flags_some_device_takes():
    """An OptimizerSpec holds no device: ``capturable`` alone is accepted (CUDA takes it)."""
    OptimizerSpec("adam", (GroupSpec(("a",)),), ("capturable",))
    with pytest.raises(ValueError, match="does not take"):
        OptimizerSpec("sgd", (GroupSpec(("a",)),), ("capturable",))


# -- the cross-device property's pieces ----------------------------------------------


def test_flags_are_cut_to_what_the_other_device_takes():
    assert flags_on("adam", ("capturable",), "cpu") == ()
    assert flags_on("adam", ("capturable", "foreach"), "cpu") == ("foreach",)
    assert flags_on("adam", ("capturable", "fused"), "cpu") == ("capturable", "fused")
    assert flags_on("adam", ("capturable",), "cuda") == ("capturable",)
    assert flags_on("adagrad", ("fused", "maximize"), "cuda") == ("maximize",)
    assert flags_on("sgd", ("fused",), "cuda") == ("fused",)
    sc = Scenario(seed=0, world_size=1, model=MLPSpec(dims=(2, 1), bias=(True,)), steps=1,
                  optimizers=(OptimizerSpec("adamw", (GroupSpec(("layers.0.weight", "layers.0.bias")),),
                                            ("capturable",)),))
    assert properties.scenario_on(sc, "cpu").optimizers[0].flags == ()
    assert properties.scenario_on(sc, "cuda") is sc


def _osd(flags: dict[str, object]) -> dict:
    state = {fqn: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2), "history": [torch.zeros(1)]} for fqn in flags}
    groups = [{"lr": torch.tensor(0.1), **({k: True for k in f} if f else {}), "params": [fqn]}
              for fqn, f in flags.items()]
    return {ref.STATE: state, ref.PARAM_GROUPS: groups}


def test_placed_moves_state_as_torch_loads_it():
    """Every state tensor to the load device, but ``step`` stays on the CPU unless the
    group is capturable or fused; values and param groups are left alone."""
    osd = _osd({"plain": (), "capt": ("capturable",), "fused": ("fused",)})
    out = properties.placed(osd, "meta")
    where = {fqn: {k: (v.device.type if k != "history" else v[0].device.type) for k, v in s.items()}
             for fqn, s in out[ref.STATE].items()}
    assert where == {
        "plain": {"step": "cpu", "exp_avg": "meta", "history": "meta"},
        "capt": {"step": "meta", "exp_avg": "meta", "history": "meta"},
        "fused": {"step": "meta", "exp_avg": "meta", "history": "meta"},
    }
    assert all(g["lr"].device.type == "cpu" for g in out[ref.PARAM_GROUPS])
    assert osd[ref.STATE]["capt"]["step"].device.type == "cpu"  # the input is not changed
    same = properties.placed(osd, "cpu")
    assert torch.equal(same[ref.STATE]["capt"]["exp_avg"], torch.ones(2))


@pytest.fixture(scope="module")
def pool():
    with WorldPool(timeout=120) as pool:
        yield pool


def test_cross_device_steps_round_trip_through_real_files(pool, tmp_path):
    """Both steps in two worlds (both on the CPU here), through torch-save and a real
    directory: the loaded optimizer equals the source, fused/capturable Adam included."""
    options = StateOptions(storage=True)
    sc = Scenario(seed=3, world_size=1, model=MLPSpec(dims=(3, 2, 1), bias=(True, True)), steps=2, optimizers=(
        OptimizerSpec("adam", (GroupSpec(("layers.0.weight", "layers.0.bias")),), ("capturable", "fused")),
        OptimizerSpec("sgd", (GroupSpec(("layers.1.weight", "layers.1.bias"), (("momentum", 0.9),)),)),
    ))
    [saved] = pool.run(1, properties.cross_device_save, sc, "torch-save", options, str(tmp_path))
    expected = saved["expected"]
    assert expected[ref.STATE]["layers.0.weight"]["step"].item() == 2.0
    assert list(tmp_path.iterdir()), "torch-save wrote nothing"
    pool.run(1, properties.cross_device_load, properties.scenario_on(sc, "cpu"), "torch-save", options,
             str(tmp_path), expected)


def test_a_cpu_only_world_sees_no_gpu():
    """The cross-device suite's CPU world stands for a machine without a GPU (on a GPU
    machine this is the real check; here it checks that the variable reaches the ranks)."""
    from helpers.rank_tasks import cuda_seen
    from osdconform.harness import CPU_ONLY_ENV

    with WorldPool(timeout=60, env=CPU_ONLY_ENV) as pool:
        assert pool.run(1, cuda_seen) == [("", False)]


def test_a_cuda_run_loads_on_the_cpu_in_a_cpu_only_pool():
    """`Conformance.pool_on`: the run's pool for its own device, else one pool per other
    device, a CPU one seeing no GPU; closed with the run.  (No world is spawned here.)"""
    from osdconform.harness import CPU_ONLY_ENV
    from osdconform.plugin._fixture import Conformance

    run = Conformance(backend_spec="torch-save", backend=None, world_sizes=(1,), device="cuda", timeout=5, xfails=[])
    other = run.pool_on("cpu")
    try:
        assert (other.device, other.env) == ("cpu", CPU_ONLY_ENV)
        assert run.pool_on("cpu") is other
    finally:
        run.close()
    assert not run._other_pools


def test_cross_device_load_fails_on_a_different_state(pool, tmp_path):
    options = StateOptions(storage=True)
    sc = Scenario(seed=3, world_size=1, model=MLPSpec(dims=(2, 1), bias=(True,)), steps=1, optimizers=(
        OptimizerSpec("adam", (GroupSpec(("layers.0.weight", "layers.0.bias")),)),
    ))
    [saved] = pool.run(1, properties.cross_device_save, sc, "torch-save", options, str(tmp_path))
    expected = saved["expected"]
    expected[ref.STATE]["layers.0.bias"]["exp_avg"] += 1.0
    with pytest.raises(Exception, match="cross-device"):
        pool.run(1, properties.cross_device_load, sc, "torch-save", options, str(tmp_path), expected)


# -- on a GPU: the flag rules against torch ------------------------------------------


def _steps_on_cuda(name, flags) -> bool:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1)).cuda()
    params = [p for p in module.parameters() if kind_of(name).params != "matrix" or p.dim() == 2]
    try:
        opt = getattr(torch.optim, kind_of(name).cls_name)(params, **{f: True for f in flags})

        def closure():
            opt.zero_grad()
            value = module(torch.randn(4, 3, device="cuda")).square().mean()
            value.backward()
            return value

        for _ in range(2):
            opt.step(closure)
        torch.cuda.synchronize()
    except (RuntimeError, ValueError, AssertionError, TypeError):
        return False
    return True


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
@pytest.mark.parametrize("name", [n for n in KNOWN if n in installed_optimizers() and KNOWN[n].params != "sparse"])
def test_flag_rules_agree_with_torch_on_cuda(name):
    """Every flag combination the CUDA rules call valid steps on the GPU, and every one
    they call invalid fails there (the CPU twin: test_optimizers.py)."""
    import inspect

    ctor = inspect.signature(getattr(torch.optim, kind_of(name).cls_name)).parameters
    candidates = [f for f in FLAGS if f in ctor]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(len(candidates) + 1):
            for flags in itertools.combinations(candidates, r):
                valid = flags_problem(name, flags, "cuda") is None
                assert _steps_on_cuda(name, flags) == valid, (name, flags)
