"""How rank processes start (``harness/_start.py``): forked from a fork server
with torch preloaded, keeping what ``spawn`` gave: a parent that is not the
driver and runs no thread, no state carried from one world to the next,
ranks that die with the driver (``test_pool.py``: a SIGKILLed driver leaves
no orphan), and ``spawn`` still there to choose."""

from __future__ import annotations

import os

import pytest
import torch

from helpers import rank_tasks as rt
from osdconform.harness import World
from osdconform.harness._start import START_METHOD_ENV, start_method


@pytest.fixture
def world_of_two():
    worlds = []

    def make(method=None):
        worlds.append(World(2, start_method=method))
        return worlds[-1]

    yield make
    for w in worlds:
        w.close()


def test_ranks_fork_from_one_single_threaded_server_not_from_the_driver(world_of_two):
    first = world_of_two("forkserver").run(rt.parent_of_rank)
    second = world_of_two("forkserver").run(rt.parent_of_rank)
    parents = {ppid for ppid, _ in first + second}
    assert len(parents) == 1 and os.getpid() not in parents, (os.getpid(), first, second)
    # Forking a process that runs threads is unsafe; the server must run none.
    assert {threads for _, threads in first + second} == {1}


def test_a_world_starts_clean_whatever_the_last_one_did(world_of_two):
    w = world_of_two("forkserver")
    assert w.run(rt.leave_a_mark, ("world 1",)) == [(None, torch.float32)] * 2
    assert w.run(rt.leave_a_mark, ("again",)) == [("world 1", torch.float64)] * 2  # the mark is real
    w.close()
    fresh = world_of_two("forkserver")
    assert fresh.run(rt.leave_a_mark, ("world 2",)) == [(None, torch.float32)] * 2


def test_spawn_can_still_be_chosen(world_of_two, monkeypatch):
    monkeypatch.setenv(START_METHOD_ENV, "spawn")
    parents = world_of_two().run(rt.parent_of_rank)
    assert {ppid for ppid, _ in parents} == {os.getpid()}


def test_an_unknown_start_method_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(START_METHOD_ENV, "fork")
    with pytest.raises(ValueError, match="unknown start method 'fork'.*forkserver"):
        start_method()
    assert start_method("spawn") == "spawn"


def test_a_rank_sees_the_drivers_environment_of_now_not_the_servers(world_of_two, monkeypatch):
    monkeypatch.setenv("OSDCONFORM_TEST_GONE", "set before the server started")
    world_of_two("forkserver").close()  # the server is running now (if it was not already)
    monkeypatch.setenv("OSDCONFORM_TEST_LATE", "set after")
    monkeypatch.delenv("OSDCONFORM_TEST_GONE")
    seen = world_of_two("forkserver").run(rt.env_of_rank, ("OSDCONFORM_TEST_LATE", "OSDCONFORM_TEST_GONE"))
    assert seen == [{"OSDCONFORM_TEST_LATE": "set after", "OSDCONFORM_TEST_GONE": None}] * 2
