"""The optimizer catalogue: which torch.optim optimizers exist and what each can do.

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
  only together with ``fused``;  on CUDA (`flags_problem` with
  ``device="cuda"``) it is drawn alone too, for every optimizer whose
  constructor takes it (`CUDA_FLAGS`: read from torch's signatures and
  ``_get_capturable_supported_devices``, not yet run on a GPU here);
* ``fused`` exists for SGD, Adam, AdamW, Adagrad and excludes ``foreach``;
  torch registers ``_fused_adagrad_`` for CPU only (its docstring says "CPU
  and CUDA", its dispatch table in 2.13 names only CPU), so on CUDA fused
  Adagrad is not drawn;
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
from dataclasses import dataclass
from typing import Any, Sequence

import torch

#: Plans under which every rank's optimizer holds every parameter as a whole,
#: plain tensor.  Any other plan kind (FSDP, tensor parallel, ... and any plan
#: kind added later) is taken to hand optimizers sharded DTensor parameters,
#: which some optimizers cannot step.
WHOLE_PARAM_PLANS = frozenset({"none", "ddp", "pp"})

#: Why an optimizer whose step needs a closure (LBFGS) cannot run in a pipeline.
PIPELINE_CLOSURE_REASON = (
    "its closure re-evaluates the loss, which in a pipeline only the last stage "
    "computes, and only inside the schedule's step"
)

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

#: Flags that hold on CUDA beyond those on CPU (``OptimizerKind.flags``), and flags
#: that do not.  ``capturable`` alone: every optimizer whose constructor takes
#: it (torch 2.13's signatures); ``fused`` Adagrad: no CUDA kernel (module doc).
CUDA_FLAGS: dict[str, frozenset[str]] = {
    name: frozenset({"capturable"})
    for name in ("adam", "adamw", "adadelta", "adamax", "nadam", "radam", "rmsprop", "asgd", "rprop")
}
NOT_ON_CUDA: dict[str, frozenset[str]] = {"adagrad": frozenset({"fused"})}
#: The devices `flags_problem` knows; None there means "some device" (the loosest rules).
DEVICES = ("cpu", "cuda")

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

#: Optimizers that can step parameters whose gradients have another dtype
#: (``Tensor.grad_dtype``; bfloat16 gradients on float32 weights), measured on
#: torch 2.13 on CPU: each steps twice with foreach or not and maximize.  The
#: Adam family (Adam, AdamW, Adamax, NAdam, RAdam) fails ("expected dtype float
#: for `end` but got dtype c10::BFloat16": its lerp mixes the float32 moment
#: with the bfloat16 gradient), every fused kernel fails ("expected scalar type
#: Float but found BFloat16", `GRAD_DTYPE_REFUSED_FLAGS`), SparseAdam takes sparse
#: gradients only.  pytorch/pytorch#146542 is torch's own account of it.
GRAD_DTYPE_OPTIMIZERS = frozenset({"sgd", "adagrad", "adadelta", "rmsprop", "asgd", "rprop", "adafactor", "lbfgs", "muon"})
GRAD_DTYPE_REFUSED_FLAGS = frozenset({"fused"})

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


def kind_flags(name: str, device: str | None = "cpu") -> frozenset[str]:
    """The flags `name` takes on `device` (None: on some device, the union)."""
    on_cpu = kind_of(name).flags
    on_cuda = (on_cpu | CUDA_FLAGS.get(name, frozenset())) - NOT_ON_CUDA.get(name, frozenset())
    if device is None:
        return on_cpu | on_cuda
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {DEVICES}")
    return on_cuda if device == "cuda" else on_cpu


def flags_problem(name: str, flags: Sequence[str], device: str | None = "cpu") -> str | None:
    """Why `flags` are not a valid combination for `name` on `device`, or None.

    ``device=None`` asks whether they are valid on *some* device: an
    `OptimizerSpec` holds no device, so it accepts what CUDA accepts (a
    scenario with ``capturable`` alone fails to train on CPU, in torch's words).
    """
    kind = kind_of(name)
    bad = sorted(set(flags) - kind_flags(name, device))
    if bad:
        where = "on any device" if device is None else f"on {device}"
        return f"{kind.cls_name} does not take flag(s) {bad} {where}"
    if "fused" in flags and "foreach" in flags:
        return "fused and foreach exclude each other"
    if device != "cuda" and device is not None and "capturable" in flags and "fused" not in flags:
        return "capturable needs CUDA-like devices unless fused (CPU only here)"
    return None


def flags_on(name: str, flags: Sequence[str], device: str) -> tuple[str, ...]:
    """`flags` less those `name` cannot take on `device` (``capturable`` alone on CPU,
    fused Adagrad on CUDA): the same optimizer as a user sets it up on the other device."""
    kept = tuple(f for f in flags if f in kind_flags(name, device))
    if flags_problem(name, kept, device) is not None and "capturable" in kept:
        kept = tuple(f for f in kept if f != "capturable")
    return kept


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
