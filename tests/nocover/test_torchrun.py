"""Scale-out under torchrun: rank 0 drives Hypothesis, the other ranks serve.

Each case starts a real ``torchrun --standalone`` on this machine (CPU,
gloo), as a user would, and reads what rank 0's pytest printed.  The last one
drives a `ScaleOutPool` directly from a small script, with four ranks, to
check attribution of a remote rank's error and hang, and that every rank exits.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from helpers.suite_runner import ROOT, TESTS

pytestmark = pytest.mark.slow

FULL = "test_roundtrip.py::test_roundtrip[full]"
SHARDED = "test_roundtrip.py::test_roundtrip[sharded]"


def torchrun(nproc: int, *args: str, timeout: float = 600) -> tuple[int, str, float]:
    """Exit code, combined output and wall time of ``torchrun --standalone ... ARGS``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([TESTS, ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def run_suite(nproc: int, *pytest_args: str, targets: tuple[str, ...] = (FULL,)) -> tuple[int, str, float]:
    return torchrun(
        nproc, "-m", "osdconform.cli._run", *targets, "--",
        "-p", "no:cacheprovider", "--tb=short", *pytest_args,
    )


def test_suite_passes_on_two_ranks(tmp_path):
    code, out, _ = run_suite(2, "--hypothesis-profile=smoke", f"--osd-repro-dir={tmp_path}")
    assert code == 0, out[-4000:]
    assert re.search(r"\b1 passed\b", out), out[-4000:]


def test_header_says_the_world_size_is_fixed(tmp_path):
    code, out, _ = run_suite(2, "--collect-only", "--osd-world-sizes=1,2")
    assert code == 0, out[-4000:]
    assert "world size fixed at WORLD_SIZE=2; rank 0 drives, the other ranks serve" in out, out[-4000:]
    code, out, _ = run_suite(2, "--collect-only", "--osd-world-sizes=1,3")
    assert code != 0 and "under torchrun the world size is fixed at WORLD_SIZE=2" in out, out[-4000:]


def test_faulty_backend_fails_with_rank_attribution(tmp_path):
    code, out, _ = run_suite(
        2, "--hypothesis-profile=smoke", "--hypothesis-seed=0",
        "--osd-backend=helpers.faulty_backends:CorruptsLastRankShard", f"--osd-repro-dir={tmp_path}",
        targets=(SHARDED,),
    )
    assert code == 1, out[-4000:]
    assert re.search(r"\b1 failed\b", out), out[-4000:]
    assert re.search(r"OSD mismatch at state\['layers\.\d+\.(weight|bias)'\]\['(exp_avg|exp_avg_sq|momentum_buffer)'\]: "
                     r"values differ", out), out[-4000:]
    # The last rank's shard is corrupted; under FSDP2 rank 0's comparison sees it
    # too, under DDP (each rank its own whole copy) only rank 1's does.
    # (pytest prefixes each line of the message with "E   ")
    assert re.search(r"\[scale-out world of 2 under torchrun; OSDMismatch on rank [01] in phase 'compare'\]\n"
                     r"E\s+rank 0: (passed|raised OSDMismatch in phase 'compare')\n"
                     r"E\s+rank 1: raised OSDMismatch in phase 'compare'", out), out[-4000:]
    assert "exitcode  : 1" in out  # torchrun's own summary: rank 0 returned pytest's exit code
    assert os.listdir(tmp_path) == ["test_roundtrip__test_roundtrip_sharded.py"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_nodes_share_a_checkpoint_directory(tmp_path):
    """Two torchrun "nodes" of 2 ranks on this machine (c10d rendezvous on localhost): the
    multi-node path.  Checkpoints go to ``--osd-checkpoint-dir`` (a path every node can
    reach), rank 0 writes there and the other node's ranks read it; each node has its own
    temporary directory, as separate machines would."""
    shared = tmp_path / "shared"
    shared.mkdir()
    port = _free_port()
    spec = f"helpers.kit_backends:rank0_saver(delay=0.0, under={str(shared)!r})"
    procs = []
    for node in range(2):
        node_tmp = tmp_path / f"node{node}"
        node_tmp.mkdir()
        env = dict(os.environ, TMPDIR=str(node_tmp))
        env["PYTHONPATH"] = os.pathsep.join([TESTS, ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=2",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=osdconform-two-nodes",
               "-m", "osdconform.cli._run", "test_roundtrip.py::test_roundtrip[storage]", "--",
               "-p", "no:cacheprovider", "--tb=short", "--hypothesis-profile=smoke",
               f"--osd-backend={spec}", f"--osd-checkpoint-dir={shared}", f"--osd-repro-dir={tmp_path}"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    out = "\n".join(outs)
    assert [p.returncode for p in procs] == [0, 0], out[-6000:]
    assert "WORLD_SIZE=4" in out and re.search(r"\b1 passed\b", out), out[-6000:]
    assert os.listdir(shared) == []  # every checkpoint directory was made there and removed


#: Long enough for the other rank to finish a first example (~1 s, with lazy imports
#: of DDP) on a loaded 2-core machine; each second here is waited out by the test.
HANG_TIMEOUT = 10


def test_hang_fails_the_example_then_the_rest_fast_and_every_rank_exits(tmp_path):
    code, out, wall = run_suite(
        2, "--hypothesis-profile=smoke",
        "--osd-backend=helpers.faulty_backends:HangsOnSet", f"--osd-timeout={HANG_TIMEOUT}", f"--osd-repro-dir={tmp_path}",
        targets=(FULL, SHARDED),
    )
    assert code == 1, out[-4000:]
    assert re.search(r"\b2 failed\b", out), out[-4000:]
    assert re.search(r"example timed out after [0-9.]+ s: ranks \[0\] did not answer "
                     r"\(last phases: rank 0 in 'set'\)", out), out[-4000:]
    assert "rank 1: passed" in out and "in barrier" in out, out[-4000:]  # attribution, rank 0's stack
    # The second test did not wait for a timeout: it was refused at once, naming the hang.
    assert out.count("not run: the scale-out world of 2 under torchrun was lost earlier") >= 2, out[-4000:]
    # One timeout for the hang; the replay and the second test are refused at once.
    m = re.search(r"2 failed.* in ([0-9.]+)s", out)
    assert m and float(m.group(1)) < 2 * HANG_TIMEOUT, out[-2000:]
    assert os.listdir(tmp_path) == ["test_roundtrip__test_roundtrip_full.py"]  # the hang's, not a refusal's


DRIVER = textwrap.dedent(
    '''
    """Drive a ScaleOutPool directly; rank 0 prints what happened as JSON."""
    import json, os, sys, time

    import torch.distributed as dist

    from osdconform.harness import PropertyViolation, RankHang, ScaleOutMember, ScaleOutPool


    def ranks(ctx):
        dist.barrier()
        return ctx.rank


    def last_rank_says_no(ctx):
        with ctx.phase("check"):
            assert ctx.rank != ctx.world_size - 1, "the last rank says no"
        return ctx.rank


    def last_rank_hangs(ctx):
        with ctx.phase("lonely barrier"):
            if ctx.rank == ctx.world_size - 1:
                dist.barrier()
        return ctx.rank


    def timed(fn, *args, **kwargs):
        start = time.monotonic()
        try:
            return {"value": fn(*args, **kwargs), "s": time.monotonic() - start}
        except Exception as exc:
            return {"error": type(exc).__name__, "message": str(exc), "s": time.monotonic() - start}


    member = ScaleOutMember()
    if member.rank == 0:
        pool = ScaleOutPool(member, timeout=60)
        size = member.size
        out = {
            "ok": timed(pool.run, size, ranks),
            "wrong size": timed(pool.run, size + 1, ranks),
            "violation": timed(pool.run, size, last_rank_says_no),
            "after violation": timed(pool.run, size, ranks),
            "hang": timed(pool.run, size, last_rank_hangs, timeout=3),
            "after hang": timed(pool.run, size, ranks),
        }
        pool.close()
        print("RESULT " + json.dumps(out), flush=True)
        code = 0
    else:
        member.serve()
        code = 0
    print(f"rank {member.rank} leaves (stuck={member.stuck})", flush=True)
    member.leave()
    if member.stuck:
        os._exit(code)
    '''
)


def test_pool_on_four_ranks_attributes_remote_errors_and_hangs(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    code, out, _ = torchrun(4, str(driver))
    assert code == 0, out[-4000:]
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    assert r["ok"]["value"] == [0, 1, 2, 3], r
    assert r["wrong size"]["error"] == "WorldStartError" and "WORLD_SIZE=4" in r["wrong size"]["message"], r
    v = r["violation"]
    assert v["error"] == "PropertyViolation", r
    assert v["message"].startswith("the last rank says no"), v
    assert "[scale-out world of 4 under torchrun; AssertionError on rank 3 in phase 'check']" in v["message"], v
    assert "rank 0: passed\nrank 1: passed\nrank 2: passed\nrank 3: raised AssertionError in phase 'check'" in v["message"]
    assert r["after violation"]["value"] == [0, 1, 2, 3], r  # the health barrier kept the world
    h = r["hang"]
    assert h["error"] == "RankHang", r
    assert "ranks [3] did not answer (last phases: rank 3 in 'lonely barrier')" in h["message"], h
    assert "--- rank 3 task thread stack (phase 'lonely barrier') ---" in h["message"], h
    assert "in last_rank_hangs" in h["message"] and "dist.barrier()" in h["message"], h
    assert 3 <= h["s"] < 30, h
    a = r["after hang"]
    assert a["error"] == "RankHang" and a["message"].startswith("not run: the scale-out world of 4"), r
    assert "last_rank_hangs() hung" in a["message"] and a["s"] < 1, a
    # Every rank left and torchrun exited 0.  Rank 0 skipped the process group's
    # teardown (the world was lost); rank 3's barrier may or may not have been
    # broken by then by the others leaving the group.
    assert "rank 0 leaves (stuck=True)" in out, out[-3000:]
    for rank in (1, 2, 3):
        assert re.search(rf"rank {rank} leaves \(stuck=(True|False)\)", out), out[-3000:]
