"""torchtitan: OptimizersContainer.load_state_dict loads a broken flat state dict without an error.

``load_flat_optim_state_dict`` looks up, for each parameter, the state names
the live optimizer has and takes whatever the dict holds under them, then
hands the result to ``Optimizer.load_state_dict``.  Nothing checks the dict:

* ``shape``: a state tensor with one row more than its parameter is loaded;
  the error comes only at the next ``step()``, far from its cause;
* ``unknown_fqn``: state of a parameter the model does not have is ignored
  (documented per optimizer, so that one dict can feed several; but the
  container never checks that every key found an owner), so a checkpoint of
  another model or with renamed parameters loads "successfully";
* ``missing_state_key``: a parameter's state without ``exp_avg`` is loaded
  without it (the next step fails);
* ``missing_fqn``: a parameter without any entry (not the first of its group,
  whose hyperparameters are read) silently loses its state.

Standalone: torchtitan and torch only, one process, no process group.
Exits 1 while the bug exists (while any of these is accepted).
"""

import sys

import torch
from torchtitan.components.optimizer import OptimizersContainer, default_adamw


def make(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    config = default_adamw(lr=0.1)
    config.implementation = "for-loop"
    container = OptimizersContainer(config, model_parts=[model])
    model(torch.randn(5, 3)).sum().backward()
    container.step()
    container.zero_grad()
    return model, container


def broken(fault):
    _, source = make(0)
    sd = dict(source.state_dict())
    if fault == "shape":
        sd["state.0.weight.exp_avg"] = torch.zeros(5, 3)  # the parameter is 4 x 3
    elif fault == "unknown_fqn":
        sd["state.9.weight.exp_avg"] = torch.zeros(2)
    elif fault == "missing_state_key":
        del sd["state.0.weight.exp_avg"]
    elif fault == "missing_fqn":
        sd = {k: v for k, v in sd.items() if not k.startswith(("state.1.bias.", "param_groups.1.bias."))}
    return sd


def main() -> int:
    accepted = []
    for fault in ("shape", "unknown_fqn", "missing_state_key", "missing_fqn"):
        _, target = make(1)
        try:
            target.load_state_dict(broken(fault))
        except Exception as exc:  # noqa: BLE001 - any refusal is what we want
            print(f"{fault}: refused ({type(exc).__name__}: {exc})")
        else:
            accepted.append(fault)
            print(f"{fault}: loaded without an error")
    return 1 if accepted else 0


if __name__ == "__main__":
    sys.exit(main())
