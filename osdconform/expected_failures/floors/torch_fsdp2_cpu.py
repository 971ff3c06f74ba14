"""Floor probe: can the installed torch train with FSDP2 (``fully_shard``) on CPU (gloo)?

Before torch 2.7 it cannot: ``fully_shard``'s all-gather records an event on
the current stream, and CPU streams have no ``record_event``
(``AttributeError: 'Stream' object has no attribute 'record_event'``).
``osdconform/scenario/_releases.py`` refuses plans fsdp2 and fsdp2+tp on
CPU below that release; ``tests/nocover/test_expected_failures.py`` runs
this probe and checks it agrees with that table on the installed torch.
Standalone: torch only, one process.  Exits 0 if it trains, 1 if it cannot.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn


def main() -> int:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        try:
            from torch.distributed.fsdp import fully_shard
        except ImportError:  # torch < 2.6 kept it private
            from torch.distributed._composable.fsdp import fully_shard
        model = nn.Linear(2, 3)
        fully_shard(model)
        opt = torch.optim.Adam(model.parameters())
        model(torch.randn(4, 2)).sum().backward()
        opt.step()
    except Exception as exc:  # noqa: BLE001 (any failure to train is the finding)
        print(f"torch {torch.__version__}: FSDP2 cannot train on CPU: {exc!r}")
        return 1
    finally:
        dist.destroy_process_group()
    print(f"torch {torch.__version__}: FSDP2 trains on CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
