"""Named conditions of the entries about models whose gradients have a dtype of their own.

`TreeSpec.grad_dtype` (``Tensor.grad_dtype``: float32 or float64 weights that
accumulate bfloat16 gradients) meets two torch defects:

* torch-dsd's ``_init_optim_state`` gives an optimizer without state and
  without gradients state by a zero-gradient step, assigning
  ``torch.zeros_like(param)`` as each gradient: a tensor of the parameter's
  dtype, which a parameter with another ``grad_dtype`` refuses
  (pytorch/pytorch#191918, repro/torch_dsd_init_optim_state_ignores_grad_dtype.py).
  It runs in a get (so in a DCP save) and in every set;
* ``Optimizer.load_state_dict`` casts every floating state tensor but
  ``step`` to its parameter's dtype, so state an optimizer made from the
  gradient (in the gradient's dtype) comes back in the parameter's
  (repro/torch_optim_load_casts_grad_dtype_state.py).

Which state follows the gradient's dtype (torch 2.13, CPU): SGD's
``momentum_buffer`` where the group has momentum and no weight decay (weight
decay adds the parameter to the gradient first, which promotes it), Rprop's
``step_size``, Adafactor's ``row_var`` / ``col_var`` / ``variance``, Muon's
``momentum_buffer`` and LBFGS's history (flat vectors of the gradients, kept
under its first parameter, so cast to that parameter's dtype).  Adagrad,
Adadelta, RMSprop and ASGD make theirs with ``zeros_like(param)`` and update
it in place: the parameter's dtype.
"""

from __future__ import annotations

from typing import Any

from ._conditions_lifecycle import walk
from ._training import got_grad, state_after_training, trainable_at_end

#: Optimizers whose state (some of it) is made from the gradient, in its dtype.
GRADIENT_SHAPED_STATE = frozenset({"rprop", "adafactor", "muon", "lbfgs"})


def grad_dtype_params(s: Any, opt: Any) -> frozenset[str]:
    """Parameters of `opt` whose gradients have another dtype than they have."""
    grad_dtype = getattr(s.model, "grad_dtype", None)
    if grad_dtype is None:
        return frozenset()
    dtypes = s.model.param_dtypes()
    return frozenset(f for f in opt.param_fqns() if dtypes[f] != grad_dtype)


def grads_at_end(s: Any) -> frozenset[str]:
    """Parameters holding a gradient after training: the last step gave them one
    (each step starts with ``zero_grad(set_to_none=True)``)."""
    if s.steps == 0:
        return frozenset()
    return trainable_at_end(s) - set(s.model.unused_param_fqns())


def dsd_get_primes_grad_dtype(s: Any) -> bool:
    """torch-dsd's get (a DCP save too) primes some optimizer (no state, no
    gradient) and so assigns a zero gradient of the parameter's dtype to a
    parameter that requires grad with another gradient dtype (#191918)."""
    grads, trainable = grads_at_end(s), trainable_at_end(s)
    return any(
        not state_after_training(s, opt)
        and not grads.intersection(opt.param_fqns())
        and trainable.intersection(grad_dtype_params(s, opt))
        for opt in s.optimizers
    )


def dsd_set_primes_grad_dtype(s: Any) -> bool:
    """torch-dsd's set into fresh objects primes some optimizer (every one but
    Adagrad, whose constructor gives it state) and so fails as the get does on
    a parameter trainable at build with another gradient dtype (#191918)."""
    frozen = s.model.frozen_after()
    return any(
        opt.name != "adagrad" and any(frozen.get(f) != 0 for f in grad_dtype_params(s, opt))
        for opt in s.optimizers
    )


def gradient_dtype_state(s: Any) -> frozenset[str]:
    """Parameters whose optimizer state after training holds a tensor in the
    gradient's dtype where the parameter has another (module docstring)."""
    got = got_grad(s)
    out: set[str] = set()
    for opt in s.optimizers:
        other = grad_dtype_params(s, opt)
        if not other:
            continue
        if opt.name == "lbfgs":
            first = opt.param_fqns()[:1]
            if got.intersection(opt.param_fqns()) and set(first) <= other:
                out.update(first)
            continue
        for group in opt.groups:
            if opt.name == "sgd":
                h = opt.effective_hparams(group)
                if not opt.group_keeps_state(group) or _nonzero(h.get("weight_decay")):
                    continue
            elif opt.name not in GRADIENT_SHAPED_STATE:
                continue
            out.update(f for f in group.params if f in got and f in other)
    return frozenset(out)


def load_casts_gradient_dtype_state(s: Any) -> bool:
    """``Optimizer.load_state_dict`` casts state in the gradient's dtype to the
    parameter's (`gradient_dtype_state`): the loaded state differs in dtype."""
    return bool(gradient_dtype_state(s))


def cast_state_breaks_the_next_step(s: Any) -> bool:
    """State cast by a load (`gradient_dtype_state`) that the next step mixes with
    the bfloat16 gradient in a ``lerp`` (Adafactor's ``row_var`` / ``col_var`` /
    ``variance``, Muon's ``momentum_buffer``), which refuses two dtypes."""
    cast = gradient_dtype_state(s)
    return any(opt.name in ("adafactor", "muon") and cast.intersection(opt.param_fqns()) for opt in s.optimizers)


def loads_gradient_dtype_state(s: Any, lifecycle: tuple) -> bool:
    """Some load of a lifecycle (into the live objects or fresh ones, or a get set
    straight back) of state that `load_casts_gradient_dtype_state` says a load casts,
    as the scenario stood when that state was saved."""
    from ..lifecycle import GetSet, Load, NewWorld, Reshard, Restart, Save

    saved = {}
    for step, at in walk(s, lifecycle):
        if isinstance(step, Save):
            saved[step.checkpoint] = load_casts_gradient_dtype_state(at)
        elif isinstance(step, GetSet) and load_casts_gradient_dtype_state(at):
            return True
        elif isinstance(step, (Load, Restart, Reshard, NewWorld)) and saved.get(step.checkpoint):
            return True
    return False


def lifecycle_primes_grad_dtype(s: Any, lifecycle: tuple) -> bool:
    """Some get of a lifecycle (a save, a get set back) or set into the live
    objects finds an optimizer without state and without gradients
    (`dsd_get_primes_grad_dtype`), or some load into fresh objects (a restart,
    a new world, a reshard whose model keeps its gradient dtype) primes one
    (`dsd_set_primes_grad_dtype`): torch-dsd's zero-gradient step fails there."""
    from ..lifecycle import GetSet, Load, NewWorld, Reshard, Restart, Save
    from ..lifecycle._rules import scenario_after

    for step, at in walk(s, lifecycle):
        if isinstance(step, (Save, GetSet, Load)) and dsd_get_primes_grad_dtype(at):
            return True
        if isinstance(step, (Restart, NewWorld)) and dsd_set_primes_grad_dtype(at):
            return True
        if isinstance(step, Reshard) and dsd_set_primes_grad_dtype(scenario_after(at, (step,))):
            return True
    return False


def _nonzero(value: Any) -> bool:
    return bool(getattr(value, "value", value))


#: The conditions above, by name (`_conditions.HELPERS` adds them).
GRAD_DTYPE = (
    grad_dtype_params,
    grads_at_end,
    dsd_get_primes_grad_dtype,
    dsd_set_primes_grad_dtype,
    gradient_dtype_state,
    load_casts_gradient_dtype_state,
    cast_state_breaks_the_next_step,
    loads_gradient_dtype_state,
    lifecycle_primes_grad_dtype,
)
