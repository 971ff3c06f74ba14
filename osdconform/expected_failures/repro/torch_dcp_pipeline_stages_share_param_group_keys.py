"""torch-dcp: under pipeline parallelism a DCP round trip of the default optimizer state dict loses each stage's param groups.

Each pipeline stage holds other parameters, so each rank's
``get_optimizer_state_dict`` (default options: unflattened) returns
``param_groups`` as a list whose entry 0 describes *that stage's* group.
``dcp.save`` flattens the nested containers into keys such as
``optim.param_groups.0.lr`` and ``optim.param_groups.0.params``; those keys are
the same on every stage, so DCP saves one rank's value for each and the other
stages' are lost (pytorch/pytorch#126595, "param_group cannot generate unique
keys ... conflict when using pipeline parallelism").  The fix torch shipped is
opt-in (``StateDictOptions(flatten_optimizer_state_dict=True)``, as torchtitan
passes); the default form still saves without an error or a warning and loads
back another stage's group.  Standalone: torch only, two processes (one stage
each, as ``torch.distributed.pipelining`` leaves them), gloo on CPU.  Exits 1
while the bug exists.
"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

WORLD = 2


def stage(rank: int) -> torch.nn.Module:
    """Stage `rank` of a two-layer model: its own layer, the other one taken out (FQNs kept)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    model[1 - rank] = torch.nn.Identity()
    return model


def run(rank: int, directory: str, results) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29598")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = stage(rank)
        optim = torch.optim.Adam(model.parameters(), lr=0.1)
        model(torch.randn(3, 4)).sum().backward()
        optim.step()
        saved = get_optimizer_state_dict(model, optim)
        dcp.save({"optim": saved}, checkpoint_id=directory)

        fresh = stage(rank)
        fresh_optim = torch.optim.Adam(fresh.parameters(), lr=0.1)
        state = {"optim": get_optimizer_state_dict(fresh, fresh_optim)}
        dcp.load(state, checkpoint_id=directory)
        loaded = [g["params"] for g in state["optim"]["param_groups"]]
        set_optimizer_state_dict(fresh, fresh_optim, state["optim"])
        got = get_optimizer_state_dict(fresh, fresh_optim)["param_groups"][0]
        missing = sorted(set(saved["param_groups"][0]) - set(got))
        try:
            fresh(torch.randn(3, 4)).sum().backward()
            fresh_optim.step()
            stepped = "steps"
        except Exception as exc:  # noqa: BLE001
            stepped = f"cannot step: {type(exc).__name__}: {exc}"
        results[rank] = (saved["param_groups"][0]["params"], loaded, missing, stepped)
    finally:
        dist.destroy_process_group()


def main() -> int:
    with tempfile.TemporaryDirectory() as directory, mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(run, args=(directory, results), nprocs=WORLD)
        results = dict(results)
    bad = {rank: r for rank, r in results.items() if r[1] != [r[0]] or r[2]}
    for rank, (params, loaded, missing, stepped) in sorted(bad.items()):
        print(
            f"BUG: stage {rank} saved its group over {params}, dcp.load handed it the groups over {loaded};"
            f" after the set its group lacks {missing} and the optimizer {stepped}"
        )
    if bad:
        return 1
    print("fixed: every stage loads back its own param groups")
    return 0


if __name__ == "__main__":
    sys.exit(main())
