"""torch-save: ``Optimizer.load_state_dict`` accepts the state of another optimizer class.

Loading an Adam checkpoint into an SGD optimizer raises nothing: SGD's param
groups silently take Adam's hyperparameters (``betas``, ``eps``, no
``momentum``), and the error comes only at the next ``step()`` (KeyError
'momentum'), far from the load that caused it.  The contract (errors are
clear and raised by the load itself) asks the load to refuse it.
Standalone: torch only, one process.  Exits 1 while the bug exists.
"""

import sys

import torch


def main() -> int:
    model = torch.nn.Linear(3, 2)
    adam = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    adam.step()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    try:
        sgd.load_state_dict(adam.state_dict())
    except Exception as exc:
        print(f"fixed: the load refused it: {exc}")
        return 0
    try:
        sgd.step()
    except Exception as exc:
        print(f"BUG: load accepted Adam's state; the next step fails: {type(exc).__name__}: {exc}")
        return 1
    print("BUG: load accepted Adam's state into SGD")
    return 1


if __name__ == "__main__":
    sys.exit(main())
