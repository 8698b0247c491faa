"""Checkpoints written by the contract (docs/CONTRACTS.md), for tests.

Used by the export/evaluate/generate/inference tests to have a checkpoint
without running the training loop: a single-process ``dcp.save`` of
``{"model": state_dict}`` of the tiny model with perturbed weights, plus
``meta.json`` and the run's ``config.yaml`` two levels up.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch


def perturbed_model(base_model: Path, *, noise: float = 0.02, seed: int = 7):
    """The base model with seeded Gaussian noise added to every weight (what training might do)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * noise)
    return model.eval()


def write_checkpoint(
    run_dir: Path,
    base_model: Path,
    *,
    step: int = 5,
    noise: float = 0.02,
    seed: int = 7,
    with_config: bool = True,
    drop_keys: Iterable[str] = (),
) -> Path:
    """``run_dir/checkpoints/step-NNNNNN`` holding the base model's weights plus noise."""
    import torch.distributed.checkpoint as dcp

    from trainer.config import dump_config, parse_config

    model = perturbed_model(base_model, noise=noise, seed=seed)
    state = {k: v for k, v in model.state_dict().items() if k not in set(drop_keys)}
    ckpt = run_dir / "checkpoints" / f"step-{step:06d}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"model": state}, checkpoint_id=str(ckpt))
    meta = {
        "step": step,
        "tokens_seen": step * 64,
        "loss": 4.2,
        "val_loss": 4.3,
        "time": time.time(),
    }
    meta["bytes"] = sum(f.stat().st_size for f in ckpt.iterdir())
    (ckpt / "meta.json").write_text(json.dumps(meta))
    if with_config:
        config = parse_config(
            {
                "model": {"path": str(base_model)},
                "data": {"corpora": [{"path": str(run_dir / "corpus")}], "seq_len": 32},
                "schedule": {"total_steps": 10, "warmup_steps": 1},
            }
        )
        (run_dir / "config.yaml").write_text(dump_config(config))
    return ckpt
