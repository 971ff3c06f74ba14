"""The public adapter kit: exports, factory specs, and which backends get shipped expected failures.

Fast: no world is spawned (the pytester runs stop after collecting one
trivial test).  Real runs of adapters are in tests/nocover/test_adapter_runs.py.
"""

from __future__ import annotations

from importlib import metadata

import pytest

import osdconform.backends as kit
from helpers.scripts import runpytest_subprocess
from osdconform.backends import BackendSpecError, builtin_name, make_backend, parse_spec, resolve_backend

USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR


def test_everything_an_adapter_needs_is_public():
    from osdconform.backends import _native, _protocol
    from osdconform.scenario import Workload

    for name in ("Backend", "CheckpointBackend", "Capabilities", "StateOptions"):
        assert getattr(kit, name) is getattr(_protocol, name) and name in kit.__all__
    for name in ("to_canonical", "to_native", "split_osd"):
        assert getattr(kit, name) is getattr(_native, name) and name in kit.__all__
    assert kit.Workload is Workload and "Workload" in kit.__all__
    from osdconform import scenario

    assert kit.Framework is _protocol.Framework and "Framework" in kit.__all__
    assert kit.apply_planned is scenario.apply_planned and kit.step_loss is scenario.step_loss
    assert kit.default_train is scenario.train
    assert {"apply_planned", "step_loss", "default_train", "BackendNotInstalled"} <= set(kit.__all__)
    assert kit.rebuild_optimizers is scenario.rebuild_optimizers and "rebuild_optimizers" in kit.__all__


def test_rebuild_optimizers_follows_parameters_a_framework_replaced():
    """A wrapping that swaps the parameters (as fully_shard does) leaves the built optimizers
    stale; rebuilt ones hold the module's parameters now, same groups, schedulers on them."""
    import torch

    from osdconform.scenario import GroupSpec, MLPSpec, OptimizerSpec, Scenario, SchedulerSpec, build_workload

    spec = OptimizerSpec("adam", (GroupSpec(("layers.0.weight",), (("lr", 0.5),)), GroupSpec(("layers.1.weight",))),
                         scheduler=SchedulerSpec("StepLR"))
    scenario = Scenario(seed=0, world_size=1, model=MLPSpec(dims=(2, 3, 1), bias=(False, False)), optimizers=(spec,))
    workload = build_workload(scenario, rank=0, device=torch.device("cpu"), planned=False)
    layer = workload.module.get_submodule("layers.0")
    layer.weight = torch.nn.Parameter(layer.weight.detach().clone())  # the framework's new parameter
    stale = workload.optimizers[0].param_groups[0]["params"][0]
    assert stale is not layer.weight
    rebuilt = kit.rebuild_optimizers(workload)
    groups = rebuilt.optimizers[0].param_groups
    assert groups[0]["params"][0] is layer.weight and groups[0]["lr"] == 0.5
    assert groups[1]["params"][0] is workload.module.get_submodule("layers.1").weight
    assert [s.optimizer for s in rebuilt.schedulers] == list(rebuilt.optimizers)


def test_a_plan_that_needs_a_gpu_is_unsupported_on_cpu_and_says_so():
    caps = kit.Capabilities(plans=frozenset({"none", "ddp"}), gpu_plans=frozenset({"fsdp1"}))
    assert caps.unsupported(plan="fsdp1") == "plan 'fsdp1' needs a GPU (--osd-device=cuda)"
    assert caps.on("cpu").unsupported(plan="fsdp1") is not None
    assert caps.on("cuda").unsupported(plan="fsdp1") is None
    assert "not supported" in caps.on("cuda").unsupported(plan="tp")


def test_a_backend_that_takes_one_optimizer_is_drawn_no_scenario_with_more():
    from hypothesis import given, settings

    from osdconform.plugin._fixture import Conformance

    class OneOptimizer:
        capabilities = kit.Capabilities(plans=frozenset({"none"}), max_optimizers=1)

    osd = Conformance(backend_spec="x", backend=OneOptimizer(), world_sizes=(1,), device="cpu",
                      timeout=1.0, xfails=[], repro_dir="/tmp")
    seen = []

    @settings(max_examples=30, database=None)
    @given(osd.scenarios(kit.StateOptions(), schedulers=True))
    def check(scenario):
        seen.append(len(scenario.optimizers))

    check()
    assert seen and set(seen) == {1}


@pytest.mark.parametrize(
    "device, release, refused",
    [("cpu", "2.6.0", {"fsdp2", "fsdp2+tp"}), ("cpu", "2.7.1", set()), ("cuda", "2.6.0", set())],
)
def test_plans_an_older_torch_cannot_run_are_refused_with_the_release_that_can(device, release, refused):
    caps = kit.Capabilities(plans=frozenset({"none", "fsdp2", "fsdp2+tp"}))
    on = caps.on(device, release)
    assert {kind for kind, _ in on.refused} == refused
    for kind in refused:
        assert on.unsupported(plan=kind).startswith(f"plan {kind!r} on cpu needs torch >= 2.7 (installed {release})")
    assert on.unsupported(plan="none") is None
    # A plan the backend does not declare is not "refused by torch": it stays unsupported as before.
    assert kit.Capabilities().on("cpu", "2.6.0").refused == ()


class _NeedsAFramework:
    """An adapter whose framework is missing: it names the module and how to install it."""

    name = "needs-it"
    capabilities = kit.Capabilities()
    requires = {"osdconform_no_such_framework": "pip install 'osdconform[nothing]'"}

    def get_optimizer_state(self, workload, options):
        raise NotImplementedError

    def set_optimizer_state(self, workload, osd, options):
        raise NotImplementedError


def test_a_backend_whose_framework_is_missing_is_refused_with_the_install_line():
    with pytest.raises(kit.BackendNotInstalled, match=r"needs 'osdconform_no_such_framework'.*pip install"):
        resolve_backend(f"{__name__}:_NeedsAFramework")


@pytest.mark.parametrize(
    "spec, base, kwargs",
    [
        ("reference", "reference", None),
        ("pkg.mod:Thing", "pkg.mod:Thing", None),
        ("pkg.mod:make()", "pkg.mod:make", {}),
        ("pkg.mod:make(compress=True)", "pkg.mod:make", {"compress": True}),
        ("mine( level = 3, name='x', dims=(1, 2), opts={'a': [1.5, None]} )", "mine",
         {"level": 3, "name": "x", "dims": (1, 2), "opts": {"a": [1.5, None]}}),
        ("pkg.mod:Outer.make(n=-1)", "pkg.mod:Outer.make", {"n": -1}),
    ],
)
def test_spec_arguments_are_keyword_literals(spec, base, kwargs):
    assert parse_spec(spec) == (base, kwargs)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("pkg.mod:make(True)", "positional arguments are not accepted"),
        ("pkg.mod:make(x=os.getcwd())", "argument 'x' is not a Python literal (os.getcwd())"),
        ("pkg.mod:make(x=__import__('os'))", "argument 'x' is not a Python literal"),
        ("pkg.mod:make(x=1", "bad arguments"),
        ("pkg.mod:make(x=1) + 2", "text after the arguments"),
        ("pkg.mod:make(x=1)(y=2)", "text after the arguments"),
        ("pkg.mod:make(**opts)", "'**' is not accepted"),
        ("(x=1)", "nothing names the target"),
    ],
)
def test_bad_spec_arguments_are_one_clear_error(spec, message):
    with pytest.raises(BackendSpecError, match="backend .*: ") as info:
        parse_spec(spec)
    assert message in str(info.value) and repr(spec) in str(info.value)


def test_a_factory_is_called_with_the_arguments_for_every_backend_made():
    spec = "helpers.kit_backends:rank0_saver(delay=0.25)"
    resolved = resolve_backend(spec)
    assert type(resolved).__name__ == "Rank0Saver" and resolved.delay == 0.25
    first, second = make_backend(spec), make_backend(spec)
    assert first is not second and first.delay == second.delay == 0.25
    # A class with arguments is instantiated with them.
    assert resolve_backend("helpers.kit_backends:Rank0Saver(delay=1)").delay == 1


def test_a_factory_that_refuses_its_arguments_is_a_spec_error():
    with pytest.raises(BackendSpecError, match=r"calling helpers.kit_backends:rank0_saver raised TypeError"):
        resolve_backend("helpers.kit_backends:rank0_saver(speed=2)")
    with pytest.raises(BackendSpecError, match="has no 'capabilities'"):
        resolve_backend("collections:OrderedDict(a=1)")


def test_shipped_expected_failures_follow_the_target_not_the_name():
    ep = metadata.EntryPoint(name="my-ref", value="osdconform.backends.reference:ReferenceBackend",
                             group="osdconform.backends")
    impostor = metadata.EntryPoint(name="mine", value="helpers.kit_backends:Impostor", group="osdconform.backends")
    assert builtin_name("torch-dsd") == "torch-dsd"
    assert builtin_name("osdconform.backends.torch_save:TorchSaveBackend") == "torch-save"
    assert builtin_name("my-ref", entry_points=[ep]) == "reference"  # an entry point to a built-in's own class
    assert builtin_name("mine", entry_points=[impostor]) is None
    assert builtin_name("helpers.kit_backends:Impostor") is None
    assert resolve_backend("helpers.kit_backends:Impostor").name == "torch-save"  # named like one, all the same


def test_the_built_in_backends_draw_the_full_space_by_default_the_others_the_core_one():
    from osdconform.backends import BUILTIN, default_space
    from osdconform.backends._registry import ADAPTERS

    assert {default_space(name) for name in BUILTIN} == {"full"}
    assert default_space("osdconform.backends.zero:ZeroBackend") == "full"  # the target, not the name
    assert {default_space(name) for name in ADAPTERS} == {"core"}  # their expected failures are core's so far
    assert default_space("helpers.kit_backends:Impostor") == "core"  # named like torch-save, a third party's


@pytest.fixture
def run(pytester, monkeypatch):
    import os

    pytester.makepyfile(test_probe="def test_probe():\n    pass\n")
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def _run(*args):
        for k in ("CI", "TF_BUILD", "GITHUB_ACTIONS"):
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")]))
        return runpytest_subprocess(pytester, "-p", "no:cacheprovider", *args)

    return _run


def _entries(result) -> int:
    import re

    for line in result.outlines:
        found = re.search(r"(\d+) expected-failure entries", line)
        if found:
            return int(found.group(1))
    raise AssertionError(result.outlines)


def test_a_third_party_backend_named_like_a_builtin_gets_no_shipped_xfails(run):
    builtin = run("--osd-backend=torch-save")
    assert builtin.ret == 0 and _entries(builtin) > 0
    impostor = run("--osd-backend=helpers.kit_backends:Impostor")
    assert impostor.ret == 0, impostor.outlines
    assert "backend torch-save (helpers.kit_backends:Impostor)" in impostor.stdout.str()
    assert _entries(impostor) == 0


def test_a_bad_factory_spec_stops_the_run_with_one_line(run):
    result = run("--osd-backend=helpers.kit_backends:rank0_saver(delay=time.time())")
    assert result.ret == USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "argument 'delay' is not a Python literal" in errors[0], result.errlines


def test_option_tags_and_descriptions_say_the_same_thing():
    """One source for an example's form and knobs: `StateOptions.features` and `describe`
    (a storage example is ``form:storage``, and ``async_save`` is tagged)."""
    from osdconform.backends import StateOptions

    storage = StateOptions(storage=True, async_save=True)
    assert storage.describe() == "storage+async_save"
    assert storage.features() == {"form:storage", "option:async_save"}
    sharded = StateOptions(full=False, flatten=True)
    assert sharded.describe() == "sharded+flatten"
    assert sharded.features() == {"form:sharded", "option:flatten"}


def test_shipped_adapters_are_registered_as_entry_points_and_named_in_the_registry():
    import os

    from osdconform.backends._registry import ADAPTERS

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["entry-points"]["osdconform.backends"] == ADAPTERS
    for name in ADAPTERS:
        assert name in project["optional-dependencies"], f"adapter {name!r} has no extra"
