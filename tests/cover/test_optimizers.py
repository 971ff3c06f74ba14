"""The optimizer dimension: discovery, the rules of the known table, draws and shrinking.

* Every optimizer the installed torch exports is covered or excluded with a
  reason; a new one fails `test_every_installed_optimizer_is_covered_or_excluded`
  by name (it is still drawn, with defaults, so it is tested meanwhile).
* The flag and tensor-lr rules of `scenario._optimizers` are checked against
  torch itself: a combination is valid there exactly when torch steps it.
* Every drawn optimizer trains, and the reference's full gather and load
  round-trip its state in one process (LBFGS's lists and flat vectors,
  Adafactor's row/column factors, SparseAdam's sparse updates).
* Each new dimension is really drawn, and shrinking reaches small scenarios.
"""

from __future__ import annotations

import inspect
import itertools
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from torch import nn

from helpers.drawn import tags_drawn
from helpers.shrinking import SMALLEST_MODEL, minimal
from osdconform import reference as ref
from osdconform import strategies as ost
from osdconform.compare import assert_osd_equal
from osdconform.scenario import (
    OPTIMIZER_NAMES,
    SCHEDULER_KINDS,
    GroupSpec,
    OptimizerSpec,
    TensorValue,
    build_optimizer,
    build_workload,
    installed_optimizers,
    train,
    unknown_optimizers,
)
from osdconform.scenario._catalogue import (
    EXCLUDED,
    FLAGS,
    KNOWN,
    accepts_param,
    flags_problem,
    kind_of,
    optimizer_class,
    tensor_lr_problem,
)
from osdconform.strategies._optimizers import fit_optimizers, flag_sets, optimizer_blueprints, substitute

CPU = torch.device("cpu")


# -- discovery --------------------------------------------------------------------


def test_every_installed_optimizer_is_covered_or_excluded():
    unknown = unknown_optimizers()
    assert not unknown, (
        f"torch {torch.__version__} has optimizer(s) {list(unknown)} that osdconform neither "
        "covers (scenario._catalogue.KNOWN) nor excludes with a reason (EXCLUDED); they are "
        "drawn with torch's defaults on unsharded plans meanwhile"
    )


def test_discovery_finds_the_optimizers_the_issue_names():
    names = set(installed_optimizers())
    assert {"sgd", "adam", "adamw", "adagrad", "adadelta", "adamax", "nadam", "radam", "rmsprop",
            "rprop", "asgd", "adafactor", "lbfgs", "sparseadam"} <= names
    assert "optimizer" not in names  # the base class is not an optimizer to draw
    assert set(OPTIMIZER_NAMES) == (names - set(EXCLUDED))
    for reason in EXCLUDED.values():
        assert reason.strip()


def test_an_optimizer_the_suite_does_not_know_is_drawn_with_defaults_and_reported(monkeypatch):
    from osdconform.scenario import _catalogue as opt_mod

    class Novel(torch.optim.SGD):
        pass

    monkeypatch.setattr(torch.optim, "Novel", Novel, raising=False)
    found = opt_mod.installed_optimizers()
    assert "novel" in found
    monkeypatch.setattr(opt_mod, "_INSTALLED", found)
    assert "novel" in opt_mod.unknown_optimizers()
    spec = OptimizerSpec("novel", (GroupSpec(("w",)),))
    assert "unknown optimizer" in spec.features()
    assert spec.unsupported_plan("none") is None
    assert "does not know" in spec.unsupported_plan("fsdp2")


def test_known_flags_exist_in_the_constructors():
    for name, kind in KNOWN.items():
        if name not in installed_optimizers():
            continue
        params = set(inspect.signature(getattr(torch.optim, kind.cls_name)).parameters)
        assert kind.flags <= params, (name, kind.flags - params)


# -- the rules, checked against torch ---------------------------------------------


def _tiny(name):
    torch.manual_seed(0)
    if kind_of(name).params == "sparse":
        module = nn.Embedding(4, 3, sparse=True)
        return module, lambda: module(torch.tensor([0, 2])).sum()
    module = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1))
    return module, lambda: module(torch.randn(4, 3)).square().mean()


def _steps_fine(name, flags, tensor_lr) -> bool:
    module, loss = _tiny(name)
    params = [p for p in module.parameters() if kind_of(name).params != "matrix" or p.dim() == 2]
    kwargs = {f: True for f in flags}
    if tensor_lr:
        kwargs["lr"] = torch.tensor(0.01)
    try:
        opt = getattr(torch.optim, kind_of(name).cls_name)(params, **kwargs)

        def closure():
            opt.zero_grad()
            value = loss()
            value.backward()
            return value

        for _ in range(2):
            opt.step(closure)
    except (RuntimeError, ValueError, AssertionError, TypeError):
        return False
    return True


@pytest.mark.parametrize("name", [n for n in KNOWN if n in installed_optimizers()])
def test_flag_and_tensor_lr_rules_agree_with_torch_on_cpu(name):
    """Every combination of flags (and lr as a tensor) the rules call valid steps on CPU;
    every one they call invalid fails in torch (so no valid one is left out)."""
    ctor = inspect.signature(getattr(torch.optim, kind_of(name).cls_name)).parameters
    candidates = [f for f in FLAGS if f in ctor]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(len(candidates) + 1):
            for flags in itertools.combinations(candidates, r):
                for tensor_lr in (False, True):
                    valid = flags_problem(name, flags) is None and not (
                        tensor_lr and tensor_lr_problem(name, flags)
                    )
                    assert _steps_fine(name, flags, tensor_lr) == valid, (name, flags, tensor_lr)


def test_flag_sets_start_empty_and_respect_sharding():
    assert flag_sets("sgd")[0] == ()
    assert ("fused",) in flag_sets("sgd", "none")
    assert all("fused" not in f for f in flag_sets("sgd", "fsdp2"))
    assert ("capturable", "fused") in flag_sets("adam", "fsdp2")
    assert ("capturable",) not in flag_sets("adam")
    assert flag_sets("lbfgs") == [()]


def test_substitute_fits_an_optimizer_and_its_flags_to_the_plan():
    assert substitute("lbfgs", (), "none") == ("lbfgs", ())
    name, flags = substitute("lbfgs", (), "fsdp2")
    assert not kind_of(name).sharded and flags == ()
    assert substitute("sgd", ("fused",), "fsdp2") == ("sgd", ())  # no sharding rule for fused SGD
    assert substitute("adam", ("capturable", "fused"), "fsdp2") == ("adam", ("capturable", "fused"))
    assert substitute("sgd", ("foreach", "maximize"), "tp") == ("sgd", ("maximize",))  # mixed DTensor/Tensor
    assert substitute("adam", ("fused",), "fsdp2+tp") == ("adam", ())  # DTensors on two meshes


def test_unsupported_plan_says_why():
    lbfgs = OptimizerSpec("lbfgs", (GroupSpec(("a",)),))
    assert lbfgs.unsupported_plan("none") is None and lbfgs.unsupported_plan("ddp") is None
    assert "flat state" in lbfgs.unsupported_plan("fsdp2")
    assert "fused" in OptimizerSpec("sgd", (GroupSpec(("a",)),), ("fused",)).unsupported_plan("fsdp2")
    assert OptimizerSpec("adam", (GroupSpec(("a",)),), ("fused",)).unsupported_plan("fsdp2") is None
    for name in ("adafactor", "rprop", "muon", "sparseadam"):
        assert OptimizerSpec(name, (GroupSpec(("a",)),)).unsupported_plan("some-new-plan")


def test_invalid_specs_are_refused():
    with pytest.raises(ValueError, match="exclude each other"):
        OptimizerSpec("adam", (GroupSpec(("a",)),), ("foreach", "fused"))
    with pytest.raises(ValueError, match="exactly one param group"):
        OptimizerSpec("lbfgs", (GroupSpec(("a",)), GroupSpec(("b",))))
    with pytest.raises(ValueError, match="lr as a Tensor"):
        OptimizerSpec("adamw", (GroupSpec(("a",), (("lr", TensorValue(0.1)),)),), ("foreach",))
    with pytest.raises(ValueError, match="unknown optimizer"):
        OptimizerSpec("nope", (GroupSpec(("a",)),))


def test_which_parameters_an_optimizer_takes():
    assert accepts_param("sparseadam", (), (4, 3), True)
    assert not accepts_param("sparseadam", (), (4, 3), False)
    assert accepts_param("muon", (), (4, 3), False) and not accepts_param("muon", (), (4,), False)
    assert accepts_param("sgd", (), (4, 3), True) and not accepts_param("sgd", ("fused",), (4, 3), True)
    assert not accepts_param("adam", (), (4, 3), True)
    assert not accepts_param("sgd", (), (4, 3), True, (("weight_decay", 0.01),))
    assert accepts_param("adagrad", (), (4, 3), True, (("weight_decay", 0.0),))


# -- every drawn optimizer trains, and the reference round-trips its state --------


@given(ost.full_scenarios(world_sizes=(1,), plan_kinds=["none"]))
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_drawn_optimizer_trains_and_its_state_round_trips_through_the_reference(scenario):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = build_workload(scenario, rank=0, device=CPU)
        train(src, scenario.steps)
        osd = ref.full_osd(src.module, src.optimizers)
        dst = build_workload(scenario, rank=0, device=CPU, init_seed=scenario.seed + 1)
        ref.load_osd(dst.module, dst.optimizers, osd)
        assert_osd_equal(osd, ref.full_osd(dst.module, dst.optimizers))
        # Given the source's parameters, the loaded optimizers take the next
        # step exactly as the source's do (state and parameters, bitwise).
        # param_groups are left out: the fresh schedulers have not stepped.
        # Not for LBFGS with a tensor lr and a scheduler: LBFGS keeps the
        # group's very lr tensor as its state 't', so the scheduler's in-place
        # update of the lr changes the source's state; no load can restore
        # that aliasing (a torch.optim quirk, told to the resume property).
        if any(
            o.name == "lbfgs" and o.scheduler and "tensor lr" in o.features() for o in scenario.optimizers
        ):
            return
        dst.module.load_state_dict(src.module.state_dict())
        train(src, 1, first_step=scenario.steps)
        train(dst, 1, first_step=scenario.steps)
        assert_osd_equal(
            ref.full_osd(src.module, src.optimizers)["state"],
            ref.full_osd(dst.module, dst.optimizers)["state"],
            context="one step after loading",
        )
        assert_osd_equal(dict(src.module.named_parameters()), dict(dst.module.named_parameters()))


class SparseModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(6, 3, sparse=True)
        self.head = nn.Linear(3, 2)

    def forward(self, idx):
        return self.head(self.emb(idx))


class _SparseModelSpec:
    """Just what `fit_optimizers` reads of a model spec."""

    def param_fqns(self):
        return ("emb.weight", "head.weight", "head.bias")

    def param_shapes(self):
        return {"emb.weight": (6, 3), "head.weight": (2, 3), "head.bias": (2,)}

    def sparse_param_fqns(self):
        return ("emb.weight",)


@pytest.mark.parametrize("sparse_opt", ["sparseadam", "sgd", "adagrad"])
def test_sparse_gradients_round_trip_through_the_reference(sparse_opt):
    torch.manual_seed(0)
    hp = (("momentum", 0.9),) if sparse_opt == "sgd" else ()
    specs = (
        OptimizerSpec(sparse_opt, (GroupSpec(("emb.weight",), hp),)),
        OptimizerSpec("adam", (GroupSpec(("head.bias", "head.weight")),)),
    )

    def build():
        module = SparseModel()
        params = dict(module.named_parameters())
        return module, [build_optimizer(s, params) for s in specs]

    module, opts = build()
    for _ in range(2):
        for o in opts:
            o.zero_grad()
        module(torch.tensor([0, 3, 3])).square().mean().backward()
        assert module.emb.weight.grad.is_sparse
        for o in opts:
            o.step()
    osd = ref.full_osd(module, opts)
    assert set(osd["state"]) == {"emb.weight", "head.weight", "head.bias"}
    fresh, fresh_opts = build()
    ref.load_osd(fresh, fresh_opts, osd)
    assert_osd_equal(osd, ref.full_osd(fresh, fresh_opts))


def test_fit_gives_sparse_parameters_to_an_optimizer_that_takes_them():
    @given(optimizer_blueprints())
    @settings(max_examples=200, deadline=None, database=None)
    def check(bp):
        specs = fit_optimizers(bp, _SparseModelSpec())
        for spec in specs:
            for group in spec.groups:
                for fqn in group.params:
                    shape = _SparseModelSpec().param_shapes()[fqn]
                    assert accepts_param(spec.name, spec.flags, shape, fqn == "emb.weight", group.hparams)
        if any(s.name == "sparseadam" for s in specs):
            seen.add("sparseadam")

    seen = set()
    check()
    assert seen == {"sparseadam"}


# -- every dimension is drawn; shrinking reaches small scenarios ------------------

NEW_TAGS = {
    "foreach", "fused", "maximize", "capturable", "tensor lr", "empty group", "custom keys",
    "several optimizers", "several groups", "params out of model order", "no-state group",
    "no-state optimizer", "amsgrad", "nesterov", "centered", "decoupled weight decay",
    "line search:strong_wolfe", "tuple hyperparameter", "no state yet", "trained",
}


def test_every_optimizer_flag_scheduler_and_group_feature_is_drawn():
    # Up to 600 draws, stopping once every wanted feature has come (helpers/drawn.py);
    # derandomized, so every run draws the same ones (random draws missed MultiStepLR once).
    dense = [n for n in OPTIMIZER_NAMES if kind_of(n).params != "sparse"]
    wanted = {f"optimizer:{n}" for n in dense} | {f"scheduler:{k}" for k in SCHEDULER_KINDS} | NEW_TAGS
    seen = tags_drawn(ost.full_scenarios(world_sizes=(1, 2)), lambda s: s.features, wanted, max_examples=600,
                      derandomize=True)
    assert wanted - seen == set()


def test_sharded_plans_draw_only_optimizers_that_run_under_them():
    @given(ost.full_scenarios(world_sizes=(1, 2), plan_kinds=["fsdp2"]))
    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(s):
        for o in s.optimizers:
            assert o.unsupported_plan("fsdp2") is None
            assert o.name not in ("lbfgs", "adafactor", "rprop", "muon")

    check()


def _one_simple_group(spec: OptimizerSpec) -> bool:
    return len(spec.groups) == 1 and not spec.flags and spec.scheduler is None


@pytest.mark.parametrize(
    "tag",
    ["tensor lr", "custom keys", "fused", "optimizer:lbfgs", "scheduler:OneCycleLR", "optimizer:muon"],
)
def test_shrinks_a_single_feature_to_a_small_scenario(tag):
    """A failure that needs one feature shrinks to one layer, no step, world 1, plan none,
    and at most two optimizers / two groups with at most one non-default hyperparameter.

    (The shrinker sometimes leaves a feature in a second group or optimizer
    rather than the first: the draws of a later slot sort after those of an
    earlier one.  Still two parameters at most.)
    """
    s = minimal(ost.full_scenarios(), lambda s: tag in s.features)
    assert tag in s.features
    assert s.world_size == 1 and s.plan.kind == "none" and s.steps == 0
    assert len(s.model.layers) == 1 and len(s.model.param_fqns()) <= 2
    assert len(s.optimizers) <= 2
    for opt in s.optimizers:
        assert len(opt.groups) <= 2
        assert all(len(g.hparams) <= 1 for g in opt.groups)
        assert len(opt.flags) <= 2  # capturable comes with fused


def test_shrinks_several_optimizers_to_two_with_defaults():
    s = minimal(ost.full_scenarios(), lambda s: len(s.optimizers) > 1)
    assert len(s.optimizers) == 2
    assert all(_one_simple_group(o) and not o.groups[0].hparams for o in s.optimizers)
    assert len(s.model.layers) == 1 and len(s.model.param_fqns()) == 2


def test_shrinks_an_empty_group_to_one_parameter_and_one_empty_group():
    s = minimal(ost.full_scenarios(), lambda s: "empty group" in s.features)
    (opt,) = s.optimizers
    assert [len(g.params) for g in opt.groups] in ([1, 0], [0, 1])
    assert s.model == SMALLEST_MODEL


def test_shrinks_permuted_params_to_two_swapped():
    s = minimal(ost.full_scenarios(), lambda s: "params out of model order" in s.features)
    (opt,) = s.optimizers
    (group,) = opt.groups
    # One layer's two parameters, swapped (a Linear's, or a tied pair's).
    assert len(group.params) == 2 and group.params == tuple(reversed(s.model.param_fqns()))
    assert len(s.model.layers) == 1 and s.steps == 0 and s.world_size == 1


@pytest.mark.parametrize(
    "name, hparams",
    [
        ("adam", {"amsgrad": True}),
        ("adamw", {"amsgrad": True}),
        ("rmsprop", {"centered": True}),
        ("rmsprop", {"momentum": 0.9}),
        ("rmsprop", {"centered": True, "momentum": 0.9}),
        ("sgd", {"momentum": 0.9}),
        ("adagrad", {"lr_decay": 0.1}),  # no optional state
    ],
)
def test_optional_state_names_the_keys_a_groups_hyperparameters_add(name, hparams):
    """`OptimizerSpec.optional_state` (read by expected-failure predicates) against torch."""
    spec = OptimizerSpec(name, (GroupSpec(("a",), ()), GroupSpec(("b",), tuple(hparams.items()))))
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = optimizer_class(name)([{"params": [a]}, {"params": [b], **hparams}], lr=0.1)
    (a.sum() + b.square().sum()).backward()
    opt.step()
    plain, extra = set(opt.state[a]), set(opt.state[b])
    assert spec.optional_state(spec.groups[0]) == frozenset()
    assert spec.optional_state(spec.groups[1]) == frozenset(extra - plain)
    assert plain <= extra


#: Hyperparameters that turn every optional parameter-shaped entry on.
_ALL_OPTIONAL = {"adam": {"amsgrad": True}, "adamw": {"amsgrad": True},
                 "rmsprop": {"centered": True, "momentum": 0.9}, "sgd": {"momentum": 0.9}}


@pytest.mark.parametrize("name", [
    n for n in KNOWN if n in installed_optimizers() and not kind_of(n).needs_closure and kind_of(n).params == "dense"
])
def test_the_param_shaped_table_is_what_torch_keeps(name):
    """The one table of parameter-shaped state (`reference._param_shaped`: the reference load
    checks those shapes, expected-failure conditions read it) against torch: after a step
    with every optional entry turned on, the entries of a 2-D parameter's shape are exactly
    the table's."""
    from osdconform.reference._param_shaped import ALWAYS, OPTIONAL, PARAM_SHAPED

    p = nn.Parameter(torch.ones(2, 3))
    opt = optimizer_class(name)([p], lr=0.1, **_ALL_OPTIONAL.get(name, {}))
    p.square().sum().backward()
    opt.step()
    shaped = {k for k, v in opt.state[p].items() if isinstance(v, torch.Tensor) and v.shape == p.shape}
    assert shaped == set(ALWAYS.get(name, ())) | set(OPTIONAL.get(name, ()))
    assert shaped <= PARAM_SHAPED
    spec = OptimizerSpec(name, (GroupSpec(("p",), tuple(_ALL_OPTIONAL.get(name, {}).items())),))
    assert spec.optional_state(spec.groups[0]) <= set(OPTIONAL.get(name, ()))


@pytest.mark.skipif("adafactor" not in installed_optimizers(), reason="this torch has no Adafactor")
def test_adafactors_shapes_are_what_torch_keeps_and_the_reference_load_refuses_others():
    """`FACTORED` (the reference load checks Adafactor's state by it) against torch's
    Adafactor, for parameters of no, one, two and three dimensions; then a load of a
    state of the wrong shape is refused (the reference took any once: the errors
    property's shape fault on Adafactor state then failed against the oracle itself)."""
    from osdconform.reference import OSDLoadError
    from osdconform.reference._param_shaped import FACTORED, factored_shape

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.s, self.v = nn.Parameter(torch.tensor(1.0)), nn.Parameter(torch.ones(3))
            self.m, self.t = nn.Parameter(torch.ones(2, 3)), nn.Parameter(torch.ones(4, 2, 3))

    model = Model()
    opt = optimizer_class("adafactor")(model.parameters(), lr=0.1)
    sum(p.square().sum() for p in model.parameters()).backward()
    opt.step()
    for name, p in model.named_parameters():
        kept = {k: tuple(v.shape) for k, v in opt.state[p].items() if k != "step"}
        assert set(kept) <= set(FACTORED), (name, kept)
        assert kept and all(shape == factored_shape(k, tuple(p.shape)) for k, shape in kept.items()), (name, kept)
    osd = ref.full_osd(model, opt)
    ref.load_osd(model, opt, osd)  # its own state loads
    for fqn, entry in (("v", "variance"), ("m", "row_var"), ("t", "col_var")):
        broken = ref.full_osd(model, opt)
        value = broken["state"][fqn][entry]
        broken["state"][fqn][entry] = torch.cat([value, value], dim=-1)
        with pytest.raises(OSDLoadError, match="Adafactor keeps"):
            ref.load_osd(model, opt, broken)


def test_lbfgs_flat_vectors_are_what_torch_keeps_and_the_reference_load_refuses_others():
    """`FLAT` against torch's LBFGS (after two steps, so its history holds
    vectors): each is as long as the group's parameters together, kept under the
    first; a load with one a row longer is refused (the reference took any once:
    the errors property's shape fault on LBFGS state failed against the oracle)."""
    from osdconform.reference import OSDLoadError
    from osdconform.reference._param_shaped import FLAT

    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    opt = torch.optim.LBFGS(model.parameters(), lr=0.1, history_size=3)
    data = torch.randn(4, 3)

    def closure():
        opt.zero_grad()
        loss = model(data).square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    opt.step(closure)
    numel = sum(p.numel() for p in model.parameters())
    (state,) = opt.state.values()
    flat = {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and v.dim() > 0}
    flat.update({f"{k}[{i}]": x for k, v in state.items() if isinstance(v, list) for i, x in enumerate(v) if x.dim()})
    assert flat and all(tuple(v.shape) == (numel,) for v in flat.values()), {k: v.shape for k, v in flat.items()}
    assert {k.split("[")[0] for k in flat} == set(FLAT["lbfgs"]), sorted(flat)
    osd = ref.full_osd(model, opt)
    ref.load_osd(model, opt, osd)  # its own state loads
    for entry in FLAT["lbfgs"]:
        broken = ref.full_osd(model, opt)
        value = broken["state"]["0.weight"][entry]
        if isinstance(value, list):
            broken["state"]["0.weight"][entry] = [torch.cat([value[0], value[0][:1]]), *value[1:]]
        else:
            broken["state"]["0.weight"][entry] = torch.cat([value, value[:1]])
        with pytest.raises(OSDLoadError, match="flat vector"):
            ref.load_osd(model, opt, broken)


@settings(max_examples=200, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(ost.full_scenarios(world_sizes=(1,), plan_kinds=["none"]))
def test_no_lbfgs_with_the_strong_wolfe_search_is_scheduled_down_to_lr_zero(s):
    """torch's strong-Wolfe line search divides by zero at lr 0 (T70): LBFGS with it
    gets no PolynomialLR, nor CosineAnnealingLR with eta_min 0 (schedulers[full]
    against the reference met one)."""
    from osdconform.strategies._optimizers import _lr_reaches_zero_under_strong_wolfe

    for opt in s.optimizers:
        assert not _lr_reaches_zero_under_strong_wolfe(opt.name, opt.groups, opt.scheduler), opt


def test_the_schedulers_that_take_strong_wolfe_lbfgs_to_lr_zero_are_named():
    from osdconform.scenario import SchedulerSpec
    from osdconform.strategies._optimizers import _lr_reaches_zero_under_strong_wolfe as reaches_zero

    wolfe = (GroupSpec(("layers.0.weight",), (("line_search_fn", "strong_wolfe"),)),)
    assert reaches_zero("lbfgs", wolfe, SchedulerSpec("PolynomialLR"))
    assert reaches_zero("lbfgs", wolfe, SchedulerSpec("CosineAnnealingLR"))
    assert not reaches_zero("lbfgs", wolfe, SchedulerSpec("CosineAnnealingLR", (("eta_min", 0.01),)))
    assert not reaches_zero("lbfgs", (GroupSpec(("layers.0.weight",)),), SchedulerSpec("PolynomialLR"))
    assert not reaches_zero("sgd", wolfe, SchedulerSpec("PolynomialLR"))
