"""The optimizer dimension of a scenario: optimizers, their param groups, and how they are built.

A scenario holds one or more `OptimizerSpec` over disjoint parts of the model;
each has param groups (`GroupSpec`) naming parameters by FQN, constructor
flags (``foreach``, ``fused``, ``maximize``, ``capturable``) and optionally an
LR scheduler.

Which optimizers exist is *discovered* from the installed torch: every
``torch.optim.Optimizer`` subclass that ``torch.optim`` exports
(`installed_optimizers`).  `KNOWN` says what the suite knows about each one it
covers (flags valid on CPU, which parameters it takes, what it cannot run
under); a discovered optimizer that is neither known nor in `EXCLUDED` (with a
written reason) is still drawn, with torch's defaults on unsharded plans only,
and reported (`unknown_optimizers`, the pytest header, tests/cover), so a new
torch release is covered by default and never skipped in silence.

The rules below were found by trying every combination on torch 2.13 (CPU):

* ``capturable=True`` asserts that params live on CUDA/XPU/HPU/... for every
  optimizer except with ``fused=True`` (Adam, AdamW), so on CPU it is drawn
  only together with ``fused``;
* ``fused`` exists for SGD, Adam, AdamW, Adagrad and excludes ``foreach``;
  fused SGD / Adagrad have no DTensor sharding rule (``aten._fused_sgd_`` /
  ``_fused_adagrad_``), so they cannot run on sharded parameters;
* ``differentiable=True`` is never drawn: it makes ``step`` differentiable,
  which needs non-leaf parameters (on a training model ``step`` raises "a
  leaf Variable that requires grad is being used in an in-place operation");
  it is not a checkpointing configuration;
* a tensor ``lr`` is refused by Adam / AdamW with ``foreach=True`` unless
  ``capturable=True``; every other optimizer takes it with any flags.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from ._schedulers import SchedulerSpec

#: Plans under which every rank's optimizer holds every parameter as a whole,
#: plain tensor.  Any other plan kind (FSDP, tensor parallel, ... and any plan
#: kind added later) is taken to hand optimizers sharded DTensor parameters,
#: which some optimizers cannot step.
WHOLE_PARAM_PLANS = frozenset({"none", "ddp"})

#: Plans that mix parameter kinds in one group: TP splits only the Linears it
#: is given, leaving plain tensors beside DTensors; FSDP2 over TP leaves
#: DTensors on the 1-D data-parallel mesh beside DTensors on the 2-D mesh.
#: Why a multi-tensor kernel cannot run there:
MIXED_TENSOR_PLANS = frozenset({"tp", "fsdp2+tp"})
MIXED_TENSOR_REASON = (
    "foreach and fused kernels refuse a list that mixes DTensor and plain tensor "
    "parameters (torch 2.13: \"got mixed torch.Tensor and DTensor\") or DTensors on "
    "different meshes (\"Cannot run aten._foreach_addcmul_.Scalar on inputs with "
    "different meshes\"), so training fails"
)

#: Constructor flags the space draws (set True; unset = torch's default).
FLAGS = ("foreach", "fused", "maximize", "capturable")


@dataclass(frozen=True)
class OptimizerKind:
    """What the suite knows about one ``torch.optim`` class.

    ``params``: which parameters it takes: ``"dense"`` (dense gradients, any
    shape), ``"dense+sparse"`` (also sparse gradients, unless fused),
    ``"sparse"`` (only sparse gradients: SparseAdam), ``"matrix"`` (2-D
    only: Muon).  ``sharded``: why it cannot step sharded (DTensor)
    parameters, or None.
    """

    cls_name: str
    flags: frozenset[str] = frozenset()
    params: str = "dense"
    needs_closure: bool = False
    one_group: bool = False
    sharded: str | None = None
    fused_sharded: str | None = None
    known: bool = True


_FOREACH_MAX = frozenset({"foreach", "maximize"})
_FUSED = frozenset({"foreach", "fused", "maximize"})
_FUSED_CAPTURABLE = _FUSED | {"capturable"}
_FUSED_SHARDED = "its fused kernel has no DTensor sharding rule in torch 2.13 (NotImplementedError)"

#: Optimizers the suite covers, by short name (the lower-cased class name).
KNOWN: dict[str, OptimizerKind] = {
    "sgd": OptimizerKind("SGD", _FUSED, params="dense+sparse", fused_sharded=_FUSED_SHARDED),
    "adam": OptimizerKind("Adam", _FUSED_CAPTURABLE),
    "adamw": OptimizerKind("AdamW", _FUSED_CAPTURABLE),
    "adagrad": OptimizerKind("Adagrad", _FUSED, params="dense+sparse", fused_sharded=_FUSED_SHARDED),
    "adadelta": OptimizerKind("Adadelta", _FOREACH_MAX),
    "adamax": OptimizerKind("Adamax", _FOREACH_MAX),
    "nadam": OptimizerKind("NAdam", _FOREACH_MAX),
    "radam": OptimizerKind("RAdam", _FOREACH_MAX),
    "rmsprop": OptimizerKind("RMSprop", _FOREACH_MAX),
    "asgd": OptimizerKind("ASGD", _FOREACH_MAX),
    "rprop": OptimizerKind(
        "Rprop", _FOREACH_MAX,
        sharded="its step fails on DTensor parameters in torch 2.13 (aten.index_put_ needs a placement change)",
    ),
    "adafactor": OptimizerKind(
        "Adafactor", _FOREACH_MAX,
        sharded="its factored second moment fails on DTensor parameters in torch 2.13 "
        "(aten.pow_ on a _NormPartial placement)",
    ),
    "lbfgs": OptimizerKind(
        "LBFGS", params="dense", needs_closure=True, one_group=True,
        sharded="it keeps one flat state for all its parameters (flattened directions and "
        "history), which no sharding plan can cut per parameter",
    ),
    "sparseadam": OptimizerKind(
        "SparseAdam", frozenset({"maximize"}), params="sparse",
        sharded="it needs sparse gradients, and sharded (DTensor) parameters get dense ones",
    ),
    "muon": OptimizerKind(
        "Muon", params="matrix",
        sharded="it orthogonalises each whole 2-D update; its in-place ops fail on DTensor "
        "parameters in torch 2.13 (aten.add_ needs a placement change)",
    ),
}

#: Optimizers of torch.optim the suite deliberately does not draw, with why.
EXCLUDED: dict[str, str] = {}

_UNKNOWN_SHARDED = "the suite does not know this optimizer; it is drawn with torch's defaults on unsharded plans only"


def installed_optimizers() -> dict[str, type]:
    """Every optimizer class ``torch.optim`` exports, by short name (lower-cased class name)."""
    found = {}
    for attr in dir(torch.optim):
        cls = getattr(torch.optim, attr)
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer:
            found[cls.__name__.lower()] = cls
    return dict(sorted(found.items()))


_INSTALLED = installed_optimizers()


def unknown_optimizers() -> tuple[str, ...]:
    """Installed optimizers the suite neither covers (`KNOWN`) nor excludes (`EXCLUDED`)."""
    return tuple(n for n in _INSTALLED if n not in KNOWN and n not in EXCLUDED)


def kind_of(name: str) -> OptimizerKind:
    """What the suite knows about optimizer `name` (defaults for an unknown one)."""
    if name in KNOWN:
        return KNOWN[name]
    if name in _INSTALLED:
        return OptimizerKind(_INSTALLED[name].__name__, sharded=_UNKNOWN_SHARDED, known=False)
    raise ValueError(f"unknown optimizer {name!r}; installed: {tuple(_INSTALLED)}")


#: Optimizers the space draws: the known ones this torch has, then unknown ones.
OPTIMIZER_NAMES = tuple(n for n in KNOWN if n in _INSTALLED) + unknown_optimizers()


def optimizer_class(name: str) -> type:
    return getattr(torch.optim, kind_of(name).cls_name)


@functools.lru_cache(maxsize=None)
def constructor_defaults(name: str) -> dict[str, Any]:
    """The hyperparameters of `name`'s constructor and their defaults (from its signature)."""
    sig = inspect.signature(optimizer_class(name).__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name not in ("self", "params") and p.default is not inspect.Parameter.empty
    }


def flags_problem(name: str, flags: Sequence[str]) -> str | None:
    """Why `flags` are not a valid combination for `name` on CPU, or None."""
    kind = kind_of(name)
    bad = sorted(set(flags) - kind.flags)
    if bad:
        return f"{kind.cls_name} does not take flag(s) {bad} here"
    if "fused" in flags and "foreach" in flags:
        return "fused and foreach exclude each other"
    if "capturable" in flags and "fused" not in flags:
        return "capturable needs CUDA-like devices unless fused (CPU only here)"
    return None


def tensor_lr_problem(name: str, flags: Sequence[str]) -> str | None:
    """Why `name` with `flags` refuses a tensor lr, or None."""
    if name in ("adam", "adamw") and "foreach" in flags and "capturable" not in flags:
        return "lr as a Tensor is not supported for capturable=False and foreach=True"
    return None


def accepts_param(
    name: str, flags: Sequence[str], shape: Sequence[int], sparse: bool, hparams: Sequence = ()
) -> bool:
    """Whether optimizer `name` (with `flags`, in a group with `hparams`) can own a parameter of `shape`.

    A sparse gradient is refused with weight decay: SGD's step fails
    ("add(sparse, dense) is not supported") and Adagrad's says "weight_decay
    option is not compatible with sparse gradients" (torch 2.13), as with fused.
    """
    rule = kind_of(name).params
    if rule == "sparse":
        return sparse
    if rule == "matrix":
        return len(shape) == 2 and not sparse
    if rule == "dense+sparse":
        return not sparse or ("fused" not in flags and not dict(hparams).get("weight_decay"))
    return not sparse


@dataclass(frozen=True)
class TensorValue:
    """A hyperparameter handed to torch as a 0-d float32 tensor (``lr=TensorValue(0.01)``)."""

    value: float

    def build(self) -> torch.Tensor:
        return torch.tensor(self.value, dtype=torch.float32)


@dataclass(frozen=True)
class GroupSpec:
    """One param group: its parameters (by FQN, in group order) and hyperparameters.

    ``hparams`` is a tuple of ``(name, value)`` pairs rather than a dict so the
    spec stays hashable and its repr stable.  Names the optimizer's
    constructor does not take are custom keys (``name``, ``initial_lr``, ...),
    which torch keeps in the group as they are.
    """

    params: tuple[str, ...]
    hparams: tuple[tuple[str, Any], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        return {k: v.build() if isinstance(v, TensorValue) else v for k, v in self.hparams}

    def describe(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hparams) or "defaults"
        return f"[{', '.join(self.params)}] {hp}"


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer over some of the model's parameters.

    ``flags`` are constructor flags set True (`FLAGS`); ``scheduler`` an LR
    scheduler stepped after it.
    """

    name: str
    groups: tuple[GroupSpec, ...]
    flags: tuple[str, ...] = ()
    scheduler: SchedulerSpec | None = field(default=None)

    def __post_init__(self) -> None:
        kind = kind_of(self.name)
        problem = flags_problem(self.name, self.flags)
        if problem:
            raise ValueError(f"{self.name} with flags {self.flags}: {problem}")
        if not self.groups:
            raise ValueError(f"{self.name} needs at least one param group")
        if kind.one_group and len(self.groups) != 1:
            raise ValueError(f"{kind.cls_name} takes exactly one param group")
        seen: set[str] = set()
        for group in self.groups:
            dup = seen.intersection(group.params)
            if dup:
                raise ValueError(f"parameters {sorted(dup)} are in more than one group")
            seen.update(group.params)
            if isinstance(dict(group.hparams).get("lr"), TensorValue):
                problem = tensor_lr_problem(self.name, self.flags)
                if problem:
                    raise ValueError(f"{self.name} with flags {self.flags}: {problem}")

    @property
    def kind(self) -> OptimizerKind:
        return kind_of(self.name)

    @property
    def needs_closure(self) -> bool:
        """Whether ``step`` must be given a closure that re-evaluates the loss (LBFGS)."""
        return self.kind.needs_closure

    def param_fqns(self) -> tuple[str, ...]:
        return tuple(fqn for g in self.groups for fqn in g.params)

    def effective_hparams(self, group: GroupSpec) -> dict[str, Any]:
        """The group's hyperparameters as torch will hold them (defaults, flags, drawn values)."""
        return {**constructor_defaults(self.name), **{f: True for f in self.flags}, **dict(group.hparams)}

    def group_keeps_state(self, group: GroupSpec) -> bool:
        """Whether stepping this group creates optimizer state (plain SGD does not)."""
        if self.name == "sgd":
            momentum = self.effective_hparams(group)["momentum"]
            return bool(momentum.value if isinstance(momentum, TensorValue) else momentum)
        return True

    def optional_state(self, group: GroupSpec) -> frozenset[str]:
        """The state entries torch.optim keeps for this group's parameters only because of
        its hyperparameters: Adam/AdamW ``amsgrad`` (``max_exp_avg_sq``), RMSprop
        ``centered`` (``grad_avg``) and ``momentum`` (``momentum_buffer``), SGD
        ``momentum``.  Groups of one optimizer can so keep different keys
        (expected-failure predicates ask)."""
        h = self.effective_hparams(group)

        def on(key: str) -> bool:
            value = h.get(key)
            return bool(value.value if isinstance(value, TensorValue) else value)

        keys = {
            "max_exp_avg_sq": self.name in ("adam", "adamw") and on("amsgrad"),
            "grad_avg": self.name == "rmsprop" and on("centered"),
            "momentum_buffer": self.name in ("rmsprop", "sgd") and on("momentum"),
        }
        return frozenset(k for k, v in keys.items() if v)

    def unsupported_plan(self, plan_kind: str) -> str | None:
        """Why this optimizer cannot run under plans of `plan_kind`, or None."""
        if plan_kind in WHOLE_PARAM_PLANS:
            return None
        kind = self.kind
        if plan_kind in MIXED_TENSOR_PLANS and {"foreach", "fused"} & set(self.flags):
            return f"{'/'.join(sorted({'foreach', 'fused'} & set(self.flags)))} under {plan_kind}: {MIXED_TENSOR_REASON}"
        if kind.sharded:
            return f"{kind.cls_name} under {plan_kind}: {kind.sharded}"
        if "fused" in self.flags and kind.fused_sharded:
            return f"fused {kind.cls_name} under {plan_kind}: {kind.fused_sharded}"
        return None

    def features(self, model_order: Sequence[str] | None = None) -> frozenset[str]:
        """Feature tags for coverage reports and expected-failure predicates.

        With ``model_order`` (the model's parameter FQNs), also whether a
        group lists its parameters in another order.
        """
        tags = {f"optimizer:{self.name}", *self.flags}
        if not self.kind.known:
            tags.add("unknown optimizer")
        if len(self.groups) > 1:
            tags.add("several groups")
        if self.scheduler is not None:
            tags |= self.scheduler.features()
        ctor = constructor_defaults(self.name)
        position = {fqn: i for i, fqn in enumerate(model_order or ())}
        stateless = [not self.group_keeps_state(g) for g in self.groups if g.params]
        if any(stateless):
            tags.add("no-state group")
            if all(stateless):
                tags.add("no-state optimizer")
        if not all(stateless):
            tags.add("stateful group")
        empty = [i for i, g in enumerate(self.groups) if not g.params]
        if len(empty) > 1:
            tags.add("several empty groups")
        if empty and empty[0] < len(self.groups) - 1:
            tags.add("empty group before others")
        for group in self.groups:
            if not group.params:
                tags.add("empty group")
            drawn = dict(group.hparams)
            if isinstance(drawn.get("lr"), TensorValue):
                tags.add("tensor lr")
            if set(drawn) - set(ctor):
                tags.add("custom keys")
            for key, value in self.effective_hparams(group).items():
                if value is True and key not in FLAGS:
                    tags.add(key.replace("_", " "))  # amsgrad, nesterov, centered, ...
                if isinstance(value, tuple):
                    tags.add("tuple hyperparameter")
                if key == "line_search_fn" and value is not None:
                    tags.add(f"line search:{value}")
            order = [position[f] for f in group.params if f in position]
            if order != sorted(order):
                tags.add("params out of model order")
        return frozenset(tags)

    def empty_group_lr_moves(self, steps: int) -> bool:
        """Whether the scheduler, after `steps` steps, has moved the lr of an empty group
        that other groups follow, away from where it stands right after the scheduler is built.

        For expected-failure predicates: a backend that leaves such a group's
        hyperparameters as a fresh optimizer has them is only seen doing so
        when they differ.  The lr of a group depends on its scheduler and
        steps alone, so a stand-in SGD with one parameter per group replays it.
        """
        if self.scheduler is None or steps == 0:
            return False
        import warnings

        from ._schedulers import build_scheduler

        groups = []
        for g in self.groups:
            hp = self.effective_hparams(g)
            lr = hp.get("lr", 1e-3)
            extra = {k: v for k, v in g.kwargs().items() if k not in constructor_defaults(self.name)}
            groups.append({"params": [torch.nn.Parameter(torch.zeros(1))], **extra,
                           "lr": lr.build() if isinstance(lr, TensorValue) else lr})
        stand_in = torch.optim.SGD(groups)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched = build_scheduler(self.scheduler, stand_in)
            start = [float(g["lr"]) for g in stand_in.param_groups]
            for _ in range(steps):
                sched.step()
        end = [float(g["lr"]) for g in stand_in.param_groups]
        last = len(self.groups) - 1
        return any(
            not g.params and i < last and start[i] != end[i] for i, g in enumerate(self.groups)
        )

    def describe(self) -> str:
        flags = f" [{', '.join(self.flags)}]" if self.flags else ""
        sched = f", scheduler {self.scheduler.describe()}" if self.scheduler else ""
        lines = [f"{self.name}{flags} with {len(self.groups)} param group(s){sched}"]
        lines += [f"  group {i}: {g.describe()}" for i, g in enumerate(self.groups)]
        return "\n".join(lines)


def build_optimizer(spec: OptimizerSpec, params: Mapping[str, torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer of `spec` over ``params`` (FQN -> parameter of the user's module)."""
    groups = [{"params": [params[fqn] for fqn in g.params], **g.kwargs()} for g in spec.groups]
    return optimizer_class(spec.name)(groups, **{flag: True for flag in spec.flags})
