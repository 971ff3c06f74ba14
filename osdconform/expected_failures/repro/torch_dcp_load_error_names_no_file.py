"""torch-dcp: loading a checkpoint with a truncated data file raises without naming the file.

``dcp.load`` raises ``CheckpointException`` whose message is only
"CheckpointException ranks:dict_keys([0])": the failing file (here the
truncated ``__0_0.distcp``) and the cause are buried in per-rank tracebacks
the message does not show.  The contract (errors are clear) asks the error to
name the offending file.  Standalone: torch only, one process, gloo.
Exits 1 while the bug exists.
"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29583")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        state = {"exp_avg": torch.randn(64, 64)}
        with tempfile.TemporaryDirectory() as tmp:
            dcp.save(state, checkpoint_id=tmp)
            data = [f for f in os.listdir(tmp) if f.endswith(".distcp")][0]
            path = os.path.join(tmp, data)
            with open(path, "r+b") as fh:
                fh.truncate(os.path.getsize(path) // 2)
            try:
                dcp.load({"exp_avg": torch.zeros(64, 64)}, checkpoint_id=tmp)
            except BaseException as exc:  # CheckpointException derives from BaseException
                message = f"{type(exc).__name__}: {exc}"
            else:
                print("dcp.load accepted a truncated file")
                return 1
    finally:
        dist.destroy_process_group()
    if data in message:
        print("fixed: the error names the file")
        return 0
    print(f"BUG: the error does not name the file {data}: {message[:200]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
