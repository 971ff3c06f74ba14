"""torch-dsd: a full set of an LBFGS checkpoint fails when the target's history has another length.

LBFGS keeps its curvature history as lists of tensors (``old_dirs``,
``old_stps``, ``ro``, ``al``) whose length grows with every inner iteration.
Train one LBFGS two steps and another (same model, other init) one step, so
their histories differ in length, then
``set_optimizer_state_dict(full_state_dict=True)`` the first one's
``get_optimizer_state_dict`` into the second: the set flattens both the
checkpoint and the target's own state to ``state.<fqn>.<key>.<index>`` keys
and looks every checkpoint key up in the target's, so it dies with
``KeyError: 'state.weight.ro.<n>'`` instead of loading the checkpoint's
history; the other way round (a shorter history in the checkpoint) it loads
silently and leaves the target's own later entries in the lists, mixing two
histories.  An empty history (an LBFGS that has run one inner iteration)
flattens to no key at all, so a set of its own state straight back into it
drops ``old_dirs``, ``old_stps`` and ``ro``, and its next step fails
(``TypeError: object of type 'NoneType' has no len()``).
``Optimizer.load_state_dict`` replaces the lists.
A user resuming into an optimizer that already stepped (a warm-up, or a
retried load) hits it; so does osdconform's ``errors`` suite, whose target
trains a step before the load and so sees this KeyError where it expects
the injected fault to be named.

Standalone: torch only, one process, gloo.  Exits 1 while the defect holds.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)


def trained(steps: int, seed: int, max_iter: int = 3):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 1, bias=False)
    optim = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=max_iter)
    x, y = torch.randn(8, 3), torch.randn(8, 1)

    def closure():
        optim.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(steps):
        optim.step(closure)
    optim.closure = closure
    return model, optim


def set_back_empty_history() -> str:
    """One step of one inner iteration (empty history lists), its state set straight back."""
    full = StateDictOptions(full_state_dict=True)
    model, optim = trained(steps=1, seed=0, max_iter=1)
    kept = sorted(k for k, v in optim.state[model.weight].items() if isinstance(v, list))
    set_optimizer_state_dict(model, optim, get_optimizer_state_dict(model, optim, options=full), options=full)
    left = sorted(k for k, v in optim.state[model.weight].items() if isinstance(v, list))
    try:
        optim.step(optim.closure)
        step = "the next step runs"
    except Exception as exc:  # noqa: BLE001
        step = f"the next step fails: {type(exc).__name__}: {exc}"
    verdict = "ok" if left == kept else "WRONG (lists dropped)"
    return f"empty history set back: lists {kept} -> {left}, {step}: {verdict}"


def load(checkpoint_steps: int, target_steps: int) -> str:
    full = StateDictOptions(full_state_dict=True)
    model, optim = trained(steps=checkpoint_steps, seed=0)
    osd = get_optimizer_state_dict(model, optim, options=full)
    target, target_optim = trained(steps=target_steps, seed=1)
    before = len(target_optim.state[target.weight]["ro"])
    try:
        set_optimizer_state_dict(target, target_optim, osd, options=full)
    except KeyError as exc:
        return f"checkpoint history {len(osd['state']['weight']['ro'])}, target {before}: KeyError {exc}"
    after = len(target_optim.state[target.weight]["ro"])
    saved = len(osd["state"]["weight"]["ro"])
    verdict = "ok" if after == saved else "WRONG (the target's own entries stay)"
    return f"checkpoint history {saved}, target {before}: loaded, history now {after}: {verdict}"


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29545")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        outcomes = [load(2, 1), load(1, 2), set_back_empty_history()]
        for line in outcomes:
            print(line)
        return 0 if all(line.endswith(": ok") for line in outcomes) else 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
