"""torch's distributed test harnesses running the same round trip: harnesses (b) and (c).

Run by ``bench_roundtrip.py`` in a subprocess (its own process group, so every
rank it spawns can be killed with it), configured by environment variables so
that the ``spawn``-ed rank processes, which re-import this file as
``__mp_main__``, generate exactly the same test classes:

* ``OSDBENCH_KIND``: ``continuous`` (b, `MultiProcContinuousTest`) or
  ``spawn`` (c, `MultiProcessTestCase`);
* ``OSDBENCH_WORLD``, ``OSDBENCH_N`` (timed test methods), ``OSDBENCH_PLAN``,
  ``OSDBENCH_BACKEND``, ``OSDBENCH_FORM`` (full|sharded);
* ``OSDBENCH_OUT``: where the driver wants the JSON result;
* ``OSDBENCH_PARENT_PID``: the driver; this runner dies with it (and its ranks
  die with this runner: ``PR_SET_PDEATHSIG`` on every level).

Each generated ``test_c_example_NNNNN`` runs, on every rank, exactly what the
other harnesses run per example: ``properties.roundtrip(ctx, scenario,
backend, options)`` with the same stand-in ctx as the floor, and checks its
summary.  The result JSON holds the start and stop time of every test (taken
by a `unittest.TestResult` in the dispatching process) and its outcome.
"""

from __future__ import annotations

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

if __name__ == "__mp_main__" and os.environ.get("OSDBENCH_RUNNER_PID"):
    # A rank process (spawn re-imports this file first thing): die with the
    # runner, even if it is already gone, before the slow imports below.
    _common.die_with_parent(int(os.environ["OSDBENCH_RUNNER_PID"]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.testing._internal.common_distributed import (  # noqa: E402
    MultiProcContinuousTest,
    MultiProcessTestCase,
)

from osdconform import properties  # noqa: E402

KIND = os.environ.get("OSDBENCH_KIND", "continuous")
WORLD = int(os.environ.get("OSDBENCH_WORLD", "2"))
N = int(os.environ.get("OSDBENCH_N", "3"))
PLAN = os.environ.get("OSDBENCH_PLAN", "fsdp2")
BACKEND = os.environ.get("OSDBENCH_BACKEND", "reference")
FORM = os.environ.get("OSDBENCH_FORM", "full")

SCENARIO = _common.scenario_for(WORLD, PLAN)
OPTIONS = _common.options_for(FORM)
EXPECTED = _common.expected_summary(SCENARIO)


def _one_example(rank: int, world: int) -> None:
    """The per-example work, identical to the floor's loop body."""
    ctx = _common.StandInCtx(rank, world, torch.device("cpu"))
    summary = properties.roundtrip(ctx, SCENARIO, BACKEND, OPTIONS)
    assert summary == EXPECTED, summary


# -- (b) processes spawned once per class, tests dispatched to them ------------


class ContinuousRoundtrip(MultiProcContinuousTest):
    world_size = WORLD
    timeout = __import__("datetime").timedelta(seconds=600)

    @classmethod
    def backend_str(cls) -> str:
        return "gloo"

    @classmethod
    def device_type(cls) -> str:
        return "cpu"

    @classmethod
    def _init_pg(cls, rank, world_size, rdvz_file):
        # Same per-rank setup as osdconform's ranks and the floor.
        torch.set_num_threads(1)
        super()._init_pg(rank, world_size, rdvz_file)

    def test_a_start(self):
        # The first test pays for the class's process start (spawn, imports,
        # process group); it runs a barrier only, so its time is the start cost.
        dist.barrier()

    def test_b_warmup(self):
        _one_example(self.rank, self.world_size)


# -- (c) a world spawned per test ------------------------------------------------


class SpawnPerTestRoundtrip(MultiProcessTestCase):
    @property
    def world_size(self) -> int:
        return WORLD

    def setUp(self) -> None:
        super().setUp()
        self._spawn_processes()

    def tearDown(self) -> None:
        super().tearDown()
        if self.rank == self.MAIN_PROCESS_RANK:
            try:
                os.remove(self.file_name)
            except OSError:
                pass

    def _init_rank(self) -> None:
        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo",
            init_method=f"file://{self.file_name}",
            rank=self.rank,
            world_size=self.world_size,
        )


def _make_continuous_test():
    def test(self):
        _one_example(self.rank, self.world_size)

    return test


def _make_spawn_test():
    def test(self):
        self._init_rank()
        _one_example(self.rank, self.world_size)

    return test


for _i in range(N):
    setattr(ContinuousRoundtrip, f"test_c_example_{_i:05d}", _make_continuous_test())
    setattr(SpawnPerTestRoundtrip, f"test_c_example_{_i:05d}", _make_spawn_test())


class _TimingResult(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timings: dict[str, dict] = {}

    def startTest(self, test):
        self.timings[test.id()] = {"start": time.perf_counter()}
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.timings[test.id()]["stop"] = time.perf_counter()


def main() -> int:
    parent = os.environ.get("OSDBENCH_PARENT_PID")
    if parent:  # die with bench_roundtrip.py even if it is SIGKILLed
        _common.die_with_parent(int(parent))
    os.environ["OSDBENCH_RUNNER_PID"] = str(os.getpid())  # inherited by the ranks
    cls = {"continuous": ContinuousRoundtrip, "spawn": SpawnPerTestRoundtrip}[KIND]
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(cls)
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=0, resultclass=_TimingResult)
    t0 = time.perf_counter()
    result = runner.run(suite)  # includes tearDownClass (joining the ranks)
    total = time.perf_counter() - t0
    problems = [
        (t.id(), text) for t, text in result.errors + result.failures
    ] + [(t.id(), f"skipped: {why}") for t, why in result.skipped]
    out = {
        "kind": KIND,
        "world": WORLD,
        "n": N,
        "run_s": total,
        "run_start": t0,
        "tests": {name.rsplit(".", 1)[-1]: v for name, v in result.timings.items()},
        "tests_run": result.testsRun,
        "problems": problems,
    }
    with open(os.environ["OSDBENCH_OUT"], "w") as f:
        json.dump(out, f)
    return 0 if result.wasSuccessful() and not result.skipped else 1


if __name__ == "__main__":
    sys.exit(main())
