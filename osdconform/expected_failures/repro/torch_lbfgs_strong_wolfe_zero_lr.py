"""torch.optim.LBFGS with ``line_search_fn="strong_wolfe"`` divides by zero at learning rate 0.

After its first step, LBFGS starts each line search at ``t = lr``; at ``lr=0``
(where ``PolynomialLR`` always ends, and ``CosineAnnealingLR`` with the default
``eta_min=0`` at ``T_max``) the bracket of ``_strong_wolfe`` collapses and
``_cubic_interpolate`` raises ``ZeroDivisionError: float division by zero``.
Without the line search, or at any other learning rate, the step runs.  So a
job that schedules LBFGS's learning rate down to 0 dies at that step, whatever
its checkpointing: osdconform does not give such an optimizer those schedulers
(``strategies/_optimizers.py``).  Standalone: torch only.  Exits 1 while the
bug exists.
"""

import sys

import torch


def main() -> int:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    optim = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=3, line_search_fn="strong_wolfe")
    sched = torch.optim.lr_scheduler.PolynomialLR(optim, total_iters=1)
    x = torch.randn(4, 2)

    def closure():
        optim.zero_grad()
        loss = model(x).square().sum()
        loss.backward()
        return loss

    try:
        for step in range(2):
            optim.step(closure)
            sched.step()
            print(f"step {step} ran; lr now {optim.param_groups[0]['lr']}")
    except ZeroDivisionError as error:
        print(f"the step at lr {optim.param_groups[0]['lr']} failed: ZeroDivisionError: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
