"""What the installed torch release can run: plans refused on older torch, with the release that can.

Why its own module: osdconform accepts a range of torch releases
(pyproject.toml), and some plans cannot even train on the older ones on some
devices.  Such a plan must be refused when scenarios are drawn, with the
reason and the release that runs it, never reported as a backend's failure
(thousands of failing examples shrunk to a 1x1 layer say nothing about the
backend).  `Capabilities.on` applies these refusals, so every draw, the
``osdconform backends`` listing and the run's header see them.

Each floor was found by running the suites on the releases around it
(docs/torch-versions.md) and has a probe script (``expected_failures/floors/``).
"""

from __future__ import annotations

from packaging.version import Version

#: (plan kind, device kind) -> (first torch release that runs it, why older ones cannot).
#: A reason may name its probe (``expected_failures/floors/``), which a test
#: runs to check the floor against the installed torch.
FLOORS: dict[tuple[str, str], tuple[str, str]] = {
    ("fsdp2", "cpu"): (
        "2.7",
        "fully_shard's all-gather records an event on the CPU stream "
        "('Stream' object has no attribute 'record_event'); "
        "probe: expected_failures/floors/torch_fsdp2_cpu.py",
    ),
    ("fsdp2+tp", "cpu"): ("2.7", "it is built on fully_shard (see fsdp2)"),
}


def installed_release() -> str:
    """The installed torch's release (``2.13.0`` of ``2.13.0+cpu``)."""
    import torch

    return Version(torch.__version__).base_version


def release_refusals(device: str, release: str | None = None) -> dict[str, str]:
    """Plan kind -> why torch `release` (default: the installed one) cannot run it on `device`."""
    release = release or installed_release()
    refused = {}
    for (kind, dev), (floor, why) in FLOORS.items():
        if dev == device and Version(release) < Version(floor):
            refused[kind] = f"plan {kind!r} on {device} needs torch >= {floor} (installed {release}): {why}"
    return refused
