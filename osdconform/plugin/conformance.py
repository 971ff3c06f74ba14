"""The conformance plugin: the ``osd`` fixture, the run's set-up, Hypothesis profiles.

Loaded only when a run asks for osdconform (see `osdconform.plugin`: the
suites' conftest lists it, or an ``--osd-*`` option was given); importing it
imports torch and the harness.  The options it reads are declared in
`_config` (``--osd-backend``, ``--osd-world-sizes``, ``--osd-device``,
``--osd-xfails``, ``--osd-timeout``, ``--osd-report``, ``--osd-progress``,
``--osd-space``, ``--osd-repro-dir``, ``--osd-coverage``).

Bad values stop the run at start-up with one line (``pytest.UsageError``).
Hypothesis's ``--hypothesis-profile`` / ``--hypothesis-seed`` work as usual;
without a profile, ``dev`` is loaded (``ci`` when a CI variable is set).

This module is the glue: what a report holds and how it is drawn lives in
`osdconform.reporting` / `_results`, the progress line in `_progress`,
expected failures in `osdconform.expected_failures`.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from ..backends import BackendSpecError, builtin_name, default_space, resolve_backend
from ..expected_failures import XfailFileError, installed_torch, load_xfails, shipped_xfails
from ..harness import active_pool, device_kind, under_torchrun
from ..harness._workdirs import sweep_stale_workdirs
from ..scenario import PLAN_KINDS, PlanSpec, plan_accepts
from ..strategies import SPACES, space
from . import _cancel, _profiles
from ._config import CONFORMANCE_KEY, PROGRESS_MODES, value
from ._fixture import Conformance
from ._progress import start_progress
from ._results import ResultCollector

_profiles.register_profiles()

pytest_plugins = ["osdconform.plugin._coverage"]  # --osd-coverage

DEFAULT_WORLD_SIZES = (1, 2, 3, 4)


def _parse_world_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise pytest.UsageError(f"--osd-world-sizes: expected integers like 1,2,4, got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise pytest.UsageError(f"--osd-world-sizes: sizes must be >= 1, got {text!r}")
    return tuple(sizes)


def _one_of(config: pytest.Config, name: str, allowed: tuple[str, ...]) -> str:
    # Checked here rather than with argparse choices: argparse's error is a
    # usage block; this is one line like every other bad --osd-* value.
    given = value(config, name)
    if given not in allowed:
        flag = "--" + name.replace("_", "-")
        raise pytest.UsageError(f"{flag}: expected one of {', '.join(allowed)}, got {given!r}")
    return given


def _check_world_sizes(sizes: tuple[int, ...], backend: Any, spec: str) -> None:
    """An explicitly asked world size must be one the backend and one of its plans can run."""
    caps = backend.capabilities
    for size in sizes:
        reason = caps.unsupported(world_size=size)
        if reason:
            raise pytest.UsageError(f"--osd-world-sizes: backend {spec!r} cannot run world size {size}: {reason}")
        plans = sorted(set(caps.plans) & set(PLAN_KINDS))
        refusals = {kind: plan_accepts(PlanSpec(kind=kind), size) for kind in plans}
        if plans and all(refusals.values()):
            why = "; ".join(f"{kind}: {r}" for kind, r in refusals.items())
            raise pytest.UsageError(
                f"--osd-world-sizes: no plan backend {spec!r} supports runs at world size {size} ({why})"
            )

#: Whether this session installed the SIGTERM handler (`_cancel.install`).
_CANCEL_KEY: pytest.StashKey[bool] = pytest.StashKey()


@pytest.hookimpl(trylast=True)  # after the terminal reporter exists (the progress line needs it)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_profile", None) is None:
        from hypothesis import settings

        settings.load_profile(_profiles.profile_for_environment())
    spec = value(config, "osd_backend")
    try:
        backend = resolve_backend(spec)
    except BackendSpecError as exc:
        raise pytest.UsageError(f"--osd-backend: {exc}") from None
    # The space asked for, else the backend's default (full for a built-in).
    asked_space = _one_of(config, "osd_space", tuple(SPACES)) if value(config, "osd_space") else None
    drawn_space = space(asked_space or default_space(spec))
    asked = value(config, "osd_world_sizes")
    sizes = _parse_world_sizes(asked) if asked is not None else DEFAULT_WORLD_SIZES
    device = _one_of(config, "osd_device", ("cpu", "cuda"))
    _one_of(config, "osd_progress", PROGRESS_MODES)
    scaleout = active_pool()
    if scaleout is not None:
        sizes = _scaleout_world_sizes(config, sizes, device, scaleout)
    elif under_torchrun():
        raise pytest.UsageError(
            "under torchrun, start the suites with `torchrun ... -m osdconform run -- PYTEST_ARGS` "
            "(rank 0 drives, the other ranks serve)"
        )
    else:
        if asked is not None:
            _check_world_sizes(sizes, backend, spec)
        try:
            device_kind(device).check(max(sizes))
        except RuntimeError as exc:
            raise pytest.UsageError(str(exc)) from None
    path = value(config, "osd_xfails")
    try:
        # The shipped file goes to a built-in's own target only, never to a
        # third-party backend whose ``name`` happens to be a built-in's.
        shipped = builtin_name(spec)
        xfails = load_xfails(path) if path else shipped_xfails(shipped) if shipped else []
        # Entries bounded to other torch releases, or to the other device, are
        # off on this one (neither covering an example nor warned about as matching nothing).
        xfails = [e for e in xfails if e.holds_for(installed_torch()) and e.holds_on(device)]
    except XfailFileError as exc:
        raise pytest.UsageError(f"--osd-xfails: {exc}") from None
    conformance = Conformance(
        backend_spec=spec,
        backend=backend,
        world_sizes=sizes,
        device=device,
        timeout=value(config, "osd_timeout"),
        xfails=xfails,
        space=drawn_space,
        checkpoint_dir=_checkpoint_dir(config),
        repro_dir=value(config, "osd_repro_dir")
        or str(config.invocation_params.dir / "osdconform-repro"),
    )
    config.stash[CONFORMANCE_KEY] = conformance
    config.stash[_CANCEL_KEY] = _cancel.install()  # SIGTERM cleans up as Ctrl-C does
    conformance.progress = start_progress(config)
    if not hasattr(config, "workerinput"):
        # The process that sees every test's report: the only one, or the xdist controller.
        config.pluginmanager.register(
            ResultCollector(config, conformance, value(config, "osd_report")), "osdconform-results"
        )


def _checkpoint_dir(config: pytest.Config) -> str | None:
    path = value(config, "osd_checkpoint_dir")
    if path is not None and not os.path.isdir(path):
        raise pytest.UsageError(f"--osd-checkpoint-dir: {path!r} is not a directory")
    return None if path is None else os.path.abspath(path)


def _scaleout_world_sizes(config, sizes, device, scaleout) -> tuple[int, ...]:
    """Under torchrun the world size is fixed (WORLD_SIZE): scenarios use that size only."""
    if device != scaleout.device:
        raise pytest.UsageError(f"--osd-device={device}, but the scale-out world runs on {scaleout.device}")
    given = value(config, "osd_world_sizes") is not None
    if given and scaleout.size not in sizes:
        raise pytest.UsageError(
            f"--osd-world-sizes={value(config, 'osd_world_sizes')}: under torchrun the world "
            f"size is fixed at WORLD_SIZE={scaleout.size}"
        )
    return (scaleout.size,)


def pytest_unconfigure(config: pytest.Config) -> None:
    conformance = config.stash.get(CONFORMANCE_KEY, None)
    if conformance is not None:
        conformance.close()
        if hasattr(conformance.progress, "close"):
            conformance.progress.close()
        if not hasattr(config, "workerinput"):
            # The controller outlives its xdist workers: remove what a killed one left.
            sweep_stale_workdirs()
    if config.stash.get(_CANCEL_KEY, False):  # not a nested session's: the outer one installed it
        _cancel.uninstall()


def pytest_report_header(config: pytest.Config) -> list[str]:
    c = config.stash.get(CONFORMANCE_KEY, None)
    if c is None:
        return []
    import torch

    from ..scenario import OPTIMIZER_NAMES, unknown_optimizers

    unknown = unknown_optimizers()
    return [
        f"osdconform: backend {c.name} ({c.backend_spec}), {c.space.name} space, world sizes "
        f"{list(c.world_sizes)}, device {c.device}, torch {torch.__version__}, "
        f"{len(c.xfails)} expected-failure entries",
        f"osdconform: {len(OPTIMIZER_NAMES) - len(unknown)} optimizers of torch.optim covered"
        + (f"; NOT KNOWN to osdconform (drawn with torch's defaults, unsharded plans only): "
           f"{', '.join(unknown)}" if unknown else ""),
    ] + [f"osdconform: refused on this torch: {why}" for _, why in c.capabilities.refused] + (
        [f"osdconform: scale-out under torchrun: world size fixed at WORLD_SIZE={c.world_sizes[0]}; "
          "rank 0 drives, the other ranks serve"] if active_pool() is not None else []
    )


@pytest.fixture(scope="session")
def osd(pytestconfig: pytest.Config) -> Conformance:
    """The conformance session: backend under test, warm world pool, expected failures."""
    conformance = pytestconfig.stash[CONFORMANCE_KEY]
    yield conformance
    conformance.close()


@pytest.fixture(autouse=True)
def _osd_current_item(request: pytest.FixtureRequest) -> None:
    conformance = request.config.stash.get(CONFORMANCE_KEY, None)
    if conformance is not None:
        conformance._start_item(request.node)
    yield
    if conformance is not None:
        conformance._finish_item()
