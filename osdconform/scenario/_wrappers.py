"""Models as people wrap them: activation checkpointing and ``torch.compile``.

Why a dimension of its own: both wrappers keep the wrapped module under a
name of their own (``checkpoint_wrapper`` under ``_checkpoint_wrapped_module``,
``torch.compile``'s ``OptimizedModule`` under ``_orig_mod``), so the names
``named_parameters()`` yields are not the user's.  A checkpoint keyed by them
cannot be loaded into the same model built without the wrapper (or with it in
another place), and about a tenth of the publicly reported optimizer
checkpointing bugs are that (pytorch/pytorch#124546; torchtitan#2622 is a
compiled block inside a checkpoint wrapper).  The canonical OSD keys state by
the user's FQN whatever wraps the model (`reference._fqn.user_fqn`).

A plan's ``wrap`` is a tuple of ``(module_fqn, wrapper)``, applied in order
when the model is built, before the plan (or a framework) sees it, as a
training script writes it:

* ``wrapper`` is ``"checkpoint"`` (``checkpoint_wrapper``, torch's default
  non-reentrant activation checkpointing) or ``"compile"`` (``torch.compile``
  with the ``eager`` backend: dynamo traces the forward and runs the captured
  graph with torch's own kernels, so nothing is compiled and the numbers are
  the unwrapped model's);
* ``module_fqn`` is a submodule a plan may wrap (`AnyModelSpec.layer_fqns`),
  or ``""`` for the whole model (compile only: ``torch.compile(model)`` is the
  commonest way an ``_orig_mod.`` prefix reaches a checkpoint);
* a later wrap of the same module wraps the earlier one: ``checkpoint`` then
  ``compile`` is torchtitan's order (a compiled checkpoint-wrapped block),
  ``compile`` then ``checkpoint`` the other.

The plan then finds its units and Linears by the user's FQNs (`user_submodule`): an
FSDP unit is the outermost module at that name (the wrapper, as torchtitan
shards its wrapped blocks), a TP Linear the innermost (the ``nn.Linear``).
The golden twin trains the model unwrapped (it drops the plan): neither
wrapper changes a number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the spec side imports no torch
    from torch import nn

    from ._models import AnyModelSpec

#: The wrappers, simplest first.
WRAPPERS = ("checkpoint", "compile")
#: The module_fqn that stands for the whole model.
ROOT = ""

Wraps = tuple[tuple[str, str], ...]
#: Every tag `wrap_features` gives (what the full space draws, for coverage).
WRAP_TAGS = ("wrap:checkpoint", "wrap:compile", "wrap:compiled model", "wrap:nested")


def validate_wraps(wraps: Wraps, model: "AnyModelSpec") -> None:
    """Raise ValueError if a wrap is unknown or names a module the model lacks."""
    layers = set(model.layer_fqns())
    for fqn, wrapper in wraps:
        if wrapper not in WRAPPERS:
            raise ValueError(f"unknown wrapper {wrapper!r} for {fqn!r}; known: {WRAPPERS}")
        if fqn == ROOT:
            if wrapper != "compile":
                raise ValueError("only 'compile' wraps the whole model")
            continue
        if fqn not in layers:
            raise ValueError(f"wrap names {fqn!r}, which is not one of the model's submodules {sorted(layers)}")


def wrap_features(wraps: Wraps) -> frozenset[str]:
    """Feature tags: ``wrap:checkpoint``, ``wrap:compile``, ``wrap:compiled model``,
    ``wrap:nested`` (one module wrapped twice, either order)."""
    tags = set()
    for fqn, wrapper in wraps:
        tags.add("wrap:compiled model" if fqn == ROOT else f"wrap:{wrapper}")
    fqns = [fqn for fqn, _ in wraps]
    if len(set(fqns)) < len(fqns):
        tags.add("wrap:nested")
    return frozenset(tags)


def describe_wraps(wraps: Wraps) -> str:
    """``"compile(checkpoint(layers.0)), torch.compile(model)"``, in the order applied."""
    around: dict[str, str] = {}
    for fqn, wrapper in wraps:
        around[fqn] = f"{wrapper}({around.get(fqn, fqn or 'model')})"
    return ", ".join(around.values())


# -- torch side ----------------------------------------------------------------


def wrap_model(wraps: Wraps, module: "nn.Module") -> "nn.Module":
    """`module` with `wraps` applied in order: submodules in place, the whole model
    (``""``) by returning its wrapper.  Returns the model to hand on."""
    import torch
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    if any(w == "compile" for _, w in wraps):
        # Dynamo caches what it traced by the forward's code and guards on the
        # module: every example builds new modules, so without a reset each
        # would recompile and, past the cache limit, silently run uncompiled.
        torch.compiler.reset()
    make = {
        "checkpoint": checkpoint_wrapper,
        "compile": lambda m: torch.compile(m, backend="eager"),
    }
    for fqn, wrapper in wraps:
        if fqn == ROOT:
            module = make[wrapper](module)
            continue
        path = module_path(module, fqn, outermost=True)
        parent_path, _, name = path.rpartition(".")
        parent = module.get_submodule(parent_path)
        parent.register_module(name, make[wrapper](parent.get_submodule(name)))
    return module


def module_path(module: "nn.Module", fqn: str, *, outermost: bool) -> str:
    """The name under which `module` holds the submodule the user calls `fqn`.

    A wrapped submodule answers to several names (the wrapper's and the
    wrapped module's, the latter with the wrappers' segments); `outermost`
    picks the wrapper (what an FSDP unit wraps), else the innermost module
    (what tensor parallelism splits).
    """
    from ..reference._fqn import user_fqn

    paths = [name for name, _ in module.named_modules(remove_duplicate=False) if user_fqn(name) == fqn]
    if not paths:
        raise KeyError(f"no submodule {fqn!r} in {type(module).__name__}")
    return min(paths, key=len) if outermost else max(paths, key=len)


def user_submodule(module: "nn.Module", fqn: str, *, outermost: bool = True) -> "nn.Module":
    """The submodule the user calls `fqn` (see `module_path`)."""
    return module.get_submodule(module_path(module, fqn, outermost=outermost))
