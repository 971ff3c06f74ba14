"""torch-save: ``torch.load`` of a truncated checkpoint raises without naming the file.

A training job that loads several checkpoint files gets "PytorchStreamReader
failed reading zip archive: failed finding central directory ... your
checkpoint file is corrupted" and no path: which file is broken is left to
guess.  The contract (errors are clear) asks the error to name the offending
file.  Standalone: torch only, one process.  Exits 1 while the bug exists.
"""

import os
import sys
import tempfile

import torch


def main() -> int:
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "optimizer.pt")
        torch.save(optim.state_dict(), path)
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) // 2)
        try:
            torch.load(path, weights_only=True)
        except Exception as exc:
            message = str(exc)
        else:
            print("torch.load accepted a truncated file")
            return 1
    if "optimizer.pt" in message:
        print("fixed: the error names the file")
        return 0
    print(f"BUG: the error does not name the file: {message[:200]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
