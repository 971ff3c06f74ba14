"""Named conditions of the entries about wrapped models (activation checkpointing, torch.compile).

torch's state-dict APIs key a parameter by the user's FQN, dropping the name
segments FSDP1, ``checkpoint_wrapper`` and ``torch.compile`` insert, except
in one arrangement: a module compiled first and then checkpoint-wrapped
(``checkpoint_wrapper(torch.compile(block))``, pytorch/torchtitan#2622), whose
parameters keep ``_orig_mod`` (repro/torch_dsd_keeps_orig_mod_inside_checkpoint_wrapper.py).
A checkpoint then names parameters the model as written does not have.
"""

from __future__ import annotations

from typing import Any


def orig_mod_units(s: Any) -> frozenset[str]:
    """The units of `s`'s model that are compiled and then checkpoint-wrapped and hold a
    parameter: torch keys those parameters with ``_orig_mod`` in their FQN."""
    wraps = s.plan.wrap
    params = s.model.param_fqns()
    return frozenset(
        fqn for i, (fqn, wrapper) in enumerate(wraps)
        if fqn and wrapper == "compile" and (fqn, "checkpoint") in wraps[i + 1:]
        and any(p.startswith(fqn + ".") for p in params)
    )


def keyed_with_orig_mod(s: Any) -> bool:
    """Whether torch keeps ``_orig_mod`` in some of `s`'s parameters' FQNs (`orig_mod_units`)."""
    return bool(orig_mod_units(s))


def rekeyed_by_wrapping(s: Any, source: Any) -> bool:
    """Whether the checkpoint of `source` and the model of `s` name some parameter
    differently, one with ``_orig_mod`` and one without (a reshard that wraps otherwise)."""
    return orig_mod_units(s) != orig_mod_units(source)


def compiled_params(s: Any) -> frozenset[str]:
    """The parameters of `s`'s model inside a module wrapped by ``torch.compile``
    (all of them where the whole model is compiled): their names carry ``_orig_mod``."""
    compiled = [fqn for fqn, wrapper in s.plan.wrap if wrapper == "compile"]
    return frozenset(
        p for p in s.model.param_fqns() if any(fqn == "" or p.startswith(fqn + ".") for fqn in compiled)
    )


WRAPPED = (orig_mod_units, keyed_with_orig_mod, rekeyed_by_wrapping, compiled_params)
