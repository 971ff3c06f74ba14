"""accelerate: ``Accelerator.load_state`` loads a checkpoint whose RNG-state file is corrupted, silently.

``load_accelerator_state`` reads ``random_states_<rank>.pkl`` inside
``try: ... except Exception: logger.info("Could not load random states")``,
so a truncated or overwritten file (the largest file of a small model's
checkpoint: Python, NumPy and torch generator states, ~14 KB) raises nothing:
the run resumes with other random streams than the checkpoint's and nobody
is told (INFO is below the default log level).  A missing file (another world
size) may be skipped; a damaged one should fail the load, naming the file.
Standalone: accelerate and torch only, one process.  Exits 1 while the bug exists.
"""

import os
import sys
import tempfile

import torch
from accelerate import Accelerator


def main() -> int:
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.backward(model(torch.randn(4, 3)).sum())
    optimizer.step()
    with tempfile.TemporaryDirectory() as tmp:
        accelerator.save_state(tmp)
        path = os.path.join(tmp, "random_states_0.pkl")
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) // 2)
        try:
            accelerator.load_state(tmp)
        except Exception as exc:
            print(f"fixed: the load refused the damaged file: {type(exc).__name__}: {exc}")
            return 0
    print("BUG: load_state accepted a checkpoint with a truncated random_states_0.pkl without raising")
    return 1


if __name__ == "__main__":
    sys.exit(main())
