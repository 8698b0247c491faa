"""Process-group setup and teardown: CUDA with NCCL, or CPU with gloo, same code.

Works under ``torchrun`` (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR)
and also as a plain single process (a one-rank gloo group on a free local port),
so the training loop never needs a second code path.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_reduce_sum", "any_rank", "init_distributed", "teardown"]


@dataclass(frozen=True, kw_only=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    """Global rank (0 writes events and meta files)."""
    world_size: int
    """Data-parallel ranks in the job."""
    local_rank: int
    """Rank on this node: the CUDA device index."""
    device: torch.device
    """The device this rank computes on."""
    backend: str
    """The process-group backend: nccl or gloo."""

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choose_device(preference: str, local_rank: int) -> torch.device:
    """cuda:<local_rank> when asked for (or auto and available), else cpu."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("parallel.device is cuda but CUDA is not available")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device_preference: str = "auto") -> DistInfo:
    """Join (or create) the process group and pick this rank's device and backend."""
    if "RANK" not in os.environ:
        # A plain `python -m trainer.train`: a group of one, so the loop is identical.
        os.environ.update(
            RANK="0",
            WORLD_SIZE="1",
            LOCAL_RANK="0",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(_free_port()),
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(device_preference, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=device,
        backend=backend,
    )


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few float64 scalars over all ranks in one collective."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. a stop signal)."""
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if dist.is_initialized():
        dist.barrier()


def teardown() -> None:
    """Leave the process group if one is open."""
    if dist.is_initialized():
        dist.destroy_process_group()
