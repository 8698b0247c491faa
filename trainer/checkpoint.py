"""Sharded checkpoints with torch.distributed.checkpoint (DCP), discovery and retention.

Layout (docs/CONTRACTS.md): ``<run_dir>/checkpoints/step-NNNNNN/`` holds the DCP
shards, ``.metadata`` and ``meta.json``. DCP writes ``.metadata`` last, after
every rank's shards are on disk, so it is the commit marker: a folder without it
(a save cut short by a crash) is never resumed from, listed or kept.

The DCP state has three top-level keys: ``model`` (the plain Hugging Face
state-dict names), ``optimizer`` (keyed by those names, so it loads into any
number of ranks) and ``train_state`` (:class:`TrainState`).
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

__all__ = [
    "CHECKPOINTS_DIR",
    "META_FILE",
    "TrainState",
    "apply_retention",
    "checkpoint_dir",
    "is_committed",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "read_meta",
    "resolve_resume",
    "save_checkpoint",
]

CHECKPOINTS_DIR = "checkpoints"
META_FILE = "meta.json"
_STEP_RE = re.compile(r"^step-(\d+)$")


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """``<run_dir>/checkpoints/step-NNNNNN``."""
    return Path(run_dir) / CHECKPOINTS_DIR / f"step-{step:06d}"


def is_committed(path: str | Path) -> bool:
    """True when DCP finished writing the folder (its ``.metadata`` exists)."""
    return (Path(path) / ".metadata").is_file()


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Committed checkpoints of a run as (step, path), oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = []
    if root.is_dir():
        for child in root.iterdir():
            m = _STEP_RE.match(child.name)
            if m and child.is_dir() and is_committed(child):
                found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest committed checkpoint, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def resolve_resume(run_dir: str | Path, resume: str | None) -> Path | None:
    """The checkpoint ``--resume`` names: ``latest`` (None when there is none yet) or a path.

    A relative path is taken relative to the run directory first, then the
    working directory. A path that is not a committed checkpoint is an error.
    """
    if not resume:
        return None
    if resume == "latest":
        return latest_checkpoint(run_dir)
    candidate = Path(run_dir) / resume
    path = candidate if candidate.exists() else Path(resume)
    if not is_committed(path):
        raise FileNotFoundError(f"--resume {resume}: no committed checkpoint (.metadata) there")
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """A checkpoint's meta.json ({} when missing or unreadable)."""
    try:
        return json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class TrainState:
    """Everything besides model and optimizer that a resume needs (DCP ``Stateful``).

    ``rng`` holds every rank's RNG states (gathered, pickled into one blob), restored
    per rank when the world size is unchanged; with a different number of ranks
    each rank is reseeded from (seed, step, rank) instead. The model itself draws
    no random numbers in training (no dropout in the supported decoders), so the
    losses do not depend on it either way.
    """

    def __init__(self, *, scheduler: Any, sampler: Any, device: torch.device, seed: int) -> None:
        self.scheduler = scheduler
        self.sampler = sampler
        self.device = device
        self.seed = seed
        self.step = 0
        self.tokens_seen = 0

    def state_dict(self) -> dict[str, Any]:
        """The DCP view (a collective: gathers the RNG states of all ranks)."""
        states: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(states, _rng_state(self.device))
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": pickle.dumps(states),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a loaded DCP view."""
        self.step = int(state["step"])
        self.tokens_seen = int(state["tokens_seen"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        states = pickle.loads(state["rng"])  # our own checkpoint: written by save_checkpoint
        rank = dist.get_rank()
        if len(states) == dist.get_world_size():
            _set_rng_state(states[rank], self.device)
        else:
            torch.manual_seed(self.seed + 1_000 * self.step + rank)
            np.random.seed((self.seed + self.step + rank) % 2**32)
            random.seed(self.seed + self.step + rank)


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def save_checkpoint(
    run_dir: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_state: TrainState,
    meta: dict[str, Any],
) -> tuple[Path, int]:
    """Save a sharded checkpoint at ``train_state.step`` (all ranks call it); returns (path, bytes).

    Rank 0 writes ``meta.json`` (meta plus step, tokens_seen, time, bytes) once the
    DCP save, ``.metadata`` included, has finished.
    """
    path = checkpoint_dir(run_dir, train_state.step)
    if dist.get_rank() == 0 and path.exists():
        # A leftover from a save that was cut short (or an earlier attempt): start clean.
        shutil.rmtree(path)
    dist.barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save(
        {"model": model_sd, "optimizer": optim_sd, "train_state": train_state},
        checkpoint_id=str(path),
    )
    size = 0
    if dist.get_rank() == 0:
        size = _folder_bytes(path)
        record = {
            **meta,
            "step": train_state.step,
            "tokens_seen": train_state.tokens_seen,
            "time": time.time(),
            "bytes": size,
        }
        tmp = path / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(tmp, path / META_FILE)
    return path, size


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_state: TrainState,
) -> None:
    """Load model, optimizer and train state from a committed checkpoint (all ranks)."""
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optimizer": optim_sd, "train_state": train_state}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"]
    )


def apply_retention(run_dir: str | Path, keep: int, keep_best: bool) -> list[Path]:
    """Delete committed checkpoints beyond the newest ``keep`` (and the best by val_loss).

    Returns the deleted folders. Call on one rank only (rank 0).
    """
    found = list_checkpoints(run_dir)
    kept = {p for _, p in found[-keep:]}
    if keep_best:
        scored = [
            (meta["val_loss"], step, p)
            for step, p in found
            if isinstance((meta := read_meta(p)).get("val_loss"), (int, float))
        ]
        if scored:
            kept.add(min(scored, key=lambda item: (item[0], -item[1]))[2])
    deleted = []
    for _, p in found:
        if p not in kept:
            shutil.rmtree(p, ignore_errors=True)
            deleted.append(p)
    return deleted
