"""torch.optim: loading NAdam's (or ASGD's) state casts its float32 scalars to the parameter's dtype.

NAdam keeps ``mu_product`` (ASGD: ``eta`` and ``mu``) as a float32 tensor
whatever the parameter's dtype.  ``Optimizer.load_state_dict`` casts every
floating state value but ``step`` to the parameter's dtype
(``_process_value_according_to_param_policy``; cf. pytorch/pytorch#75224), so
after a load into a float64 (or bfloat16) model ``mu_product`` is float64 and
the optimizer's state differs from the one that was saved: a round trip
through any loader that ends in ``load_state_dict`` changes it (bfloat16
also rounds it).  Standalone: torch only, one process.  Exits 1 while the bug
exists.
"""

import sys

import torch


def main() -> int:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2, dtype=torch.float64)
    optim = torch.optim.NAdam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3, dtype=torch.float64)).sum().backward()
    optim.step()
    saved = optim.state_dict()
    before = saved["state"][0]["mu_product"].dtype
    fresh = torch.optim.NAdam(torch.nn.Linear(3, 2, dtype=torch.float64).parameters(), lr=0.1)
    fresh.load_state_dict(saved)
    after = fresh.state_dict()["state"][0]["mu_product"].dtype
    print(f"mu_product saved as {before}, loaded as {after}")
    return 1 if after != before else 0


if __name__ == "__main__":
    sys.exit(main())
