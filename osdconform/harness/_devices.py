"""Device kinds: which torch.distributed backend and device a rank uses.

``cpu`` (gloo) is what runs everywhere, including CI.  ``cuda`` (NCCL, one GPU
per local rank) is kept here, apart from everything else, and cannot be run on
machines without GPUs; `check` says so before any world is spawned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceKind:
    name: str
    pg_backend: str

    def check(self, world_size: int) -> None:
        """Raise a clear error if this machine cannot host a world of `world_size`."""

    def setup(self, local_rank: int) -> torch.device:
        """Called in the rank process before the process group exists."""
        raise NotImplementedError


class _CpuGloo(DeviceKind):
    def setup(self, local_rank: int) -> torch.device:
        return torch.device("cpu")


class _CudaNccl(DeviceKind):
    def check(self, world_size: int) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("--osd-device=cuda: torch sees no CUDA device on this machine")
        n = torch.cuda.device_count()
        if n < world_size:
            raise RuntimeError(
                f"--osd-device=cuda: a world of {world_size} needs one GPU per rank, "
                f"this machine has {n}"
            )

    def setup(self, local_rank: int) -> torch.device:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)


#: The environment of a CPU world that must see no GPU, as on a machine without one
#: (`WorldPool`'s ``env``): the cross-device suite loads a CUDA checkpoint there, so a
#: load that needs CUDA (``torch.load`` of CUDA tensors without ``map_location``)
#: fails as it would on a CPU-only machine.  Set in each rank before torch first
#: asks for a device (CUDA reads it when it initialises).
CPU_ONLY_ENV: dict[str, str] = {"CUDA_VISIBLE_DEVICES": ""}

DEVICES: dict[str, DeviceKind] = {
    "cpu": _CpuGloo("cpu", "gloo"),
    "cuda": _CudaNccl("cuda", "nccl"),
}


def device_kind(name: str) -> DeviceKind:
    try:
        return DEVICES[name]
    except KeyError:
        raise ValueError(f"unknown device {name!r}; choose from {sorted(DEVICES)}") from None
