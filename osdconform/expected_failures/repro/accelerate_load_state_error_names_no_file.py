"""accelerate: ``Accelerator.load_state`` of a damaged ``optimizer.bin`` raises without naming the file.

A checkpoint directory holds several files (``model.safetensors``,
``optimizer.bin``, ``optimizer_1.bin``, ``scheduler.bin``, RNG states); when
one is truncated, load_state raises torch.load's "PytorchStreamReader failed
reading zip archive: failed finding central directory" and no path, so which
file of which checkpoint is broken is left to guess (Accelerate adds nothing
to torch's message).  Standalone: accelerate and torch only, one process.
Exits 1 while the bug exists.
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
        path = os.path.join(tmp, "optimizer.bin")
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) // 2)
        try:
            accelerator.load_state(tmp)
        except Exception as exc:
            message = str(exc)
        else:
            print("load_state accepted a truncated optimizer.bin")
            return 1
    if "optimizer.bin" in message:
        print("fixed: the error names the file")
        return 0
    print(f"BUG: the error does not name the file: {message[:200]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
