"""The ``safetensors`` adapter: the optimizer state in one ``.safetensors`` file.

safetensors stores a flat ``{name: tensor}`` map and a ``{str: str}``
metadata header, nothing else, so an optimizer state dict (nested dicts,
param_groups of floats, tuples, ints, tensor hyperparameters) has to be
flattened to be stored at all.  This adapter does what a training script that
picks safetensors for its optimizer state must do:

* every tensor goes into the tensor map under a generated key; everything
  else (the nesting, ``param_groups``, Python scalars, tuples vs lists) goes
  into the metadata as tagged JSON, so types survive the trip;
* each tensor is copied to fresh contiguous CPU memory first, because
  safetensors refuses non-contiguous tensors and tensors that share memory
  (a tensor that appears twice is stored once and comes back as one);
* safetensors has no checksum: a file damaged in its data section loads
  silently.  The adapter writes a SHA-256 of the tensors into the metadata and
  checks it on load, so a corrupted or truncated file raises, naming the file.

The OSD is the canonical full one (state keyed by FQN, the optimizers' groups
concatenated), gathered from ``optimizer.state_dict()``: the replicated plans
(``none``, ``ddp``) hold it on every rank, and under ``zero`` each
``ZeroRedundancyOptimizer`` consolidates it on rank 0 (public torch API).
Rank 0 writes (the suite puts a barrier between save and load), every rank
reads.  Sharded plans (FSDP, TP, DTensor) are not supported: gathering and
re-sharding them is torch.distributed.checkpoint's job (tested as
``torch-dsd`` / ``torch-dcp``), not the file format's.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import torch

from osdconform.backends import Capabilities, split_osd, to_canonical, to_native

FILE_NAME = "optimizers.safetensors"
FORMAT = "osdconform-optimizer-state/1"


def _encode(value: Any, tensors: dict[str, torch.Tensor], seen: dict[int, str], path: str) -> Any:
    """`value` as tagged JSON; its tensors moved into `tensors` (copied: contiguous, unshared, CPU)."""
    if isinstance(value, torch.Tensor):
        if id(value) not in seen:
            seen[id(value)] = key = f"t{len(tensors)}"
            tensors[key] = value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
        return {"T": seen[id(value)]}
    if isinstance(value, dict):
        return {"D": [[_encode(k, tensors, seen, path), _encode(v, tensors, seen, f"{path}.{k}")]
                      for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, tensors, seen, f"{path}[{i}]") for i, v in enumerate(value)]
        return {"L" if isinstance(value, list) else "U": items}
    if value is None or type(value) in (bool, int, float, str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {path} in safetensors metadata")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if not isinstance(value, dict):
        return value
    ((tag, body),) = value.items()
    if tag == "T":
        return tensors[body]
    if tag == "D":
        return {_decode(k, tensors): _decode(v, tensors) for k, v in body}
    items = [_decode(v, tensors) for v in body]
    return items if tag == "L" else tuple(items)


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes: what safetensors itself never checks."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def full_osd(workload) -> dict[str, Any]:
    """The canonical full OSD of all optimizers, on rank 0 (a collective under ``zero``)."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    osd: dict[str, Any] = {"state": {}, "param_groups": []}
    for opt in workload.optimizers:
        if isinstance(opt, ZeroRedundancyOptimizer):
            opt.consolidate_state_dict(to=0)  # every rank, then the full dict exists on rank 0 only
            if workload.rank != 0:
                continue
        part = to_canonical(opt.state_dict(), workload.module, opt.param_groups)
        osd["state"].update(part["state"])
        osd["param_groups"] += part["param_groups"]
    return osd


class SafetensorsBackend:
    """Save: rank 0 writes one .safetensors file.  Load: every rank reads it, checks it, then loads."""

    name = "safetensors"
    requires = {"safetensors": "pip install 'osdconform[safetensors]'"}
    capabilities = Capabilities(
        full=False, sharded=False, checkpoint=True, plans=frozenset({"none", "ddp", "zero"})
    )

    def save_checkpoint(self, workload, directory: str, options) -> None:
        from safetensors.torch import save_file

        osd = full_osd(workload)
        if workload.rank != 0:
            return
        tensors: dict[str, torch.Tensor] = {}
        tree = _encode(osd, tensors, {}, "osd")
        metadata = {
            "format": FORMAT,
            "classes": json.dumps([type(_inner(opt)).__name__ for opt in workload.optimizers]),
            "tree": json.dumps(tree, allow_nan=True),
            "sha256": _digest(tensors),
        }
        path = os.path.join(directory, FILE_NAME)
        save_file(tensors, path + ".tmp", metadata=metadata)
        os.replace(path + ".tmp", path)  # never a half-written file under the real name

    def load_checkpoint(self, workload, directory: str, options) -> None:
        path = os.path.join(directory, FILE_NAME)
        osd, classes = _read(path)
        live = [type(_inner(opt)).__name__ for opt in workload.optimizers]
        if classes != live:  # Optimizer.load_state_dict would take another class's state
            raise ValueError(f"{path} holds the state of {classes}, not of {live}")
        parts = split_osd(osd, [len(opt.param_groups) for opt in workload.optimizers])
        # Convert every part before loading any: a bad FQN must change nothing.
        natives = [to_native(part, workload.module, opt.param_groups) for opt, part in zip(workload.optimizers, parts)]
        for opt, native in zip(workload.optimizers, natives):
            opt.load_state_dict(native)


def _inner(opt):
    """The optimizer whose class owns the state: ZeRO's wrapped one, else `opt` itself."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return opt.optim if isinstance(opt, ZeroRedundancyOptimizer) else opt


def _read(path: str) -> tuple[dict[str, Any], list[str]]:
    """The OSD and optimizer classes in `path`; any failure raises naming the file."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"not an optimizer state written by this adapter (format {metadata.get('format')!r})")
        if _digest(tensors) != metadata.get("sha256"):
            raise ValueError("the tensor data does not match its SHA-256 (the file is corrupted)")
        return _decode(json.loads(metadata["tree"]), tensors), json.loads(metadata["classes"])
    except Exception as exc:
        raise RuntimeError(f"cannot read optimizer checkpoint {path}: {type(exc).__name__}: {exc}") from exc
