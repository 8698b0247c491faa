"""AdamW with the usual parameter groups, and the learning-rate schedules.

Weight decay is not applied to 1-D parameters (norm weights and biases): decaying
them toward zero only fights the normalisation. AdamW is fused on CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.distributed.tensor import DTensor
from torch.optim.lr_scheduler import LambdaLR

from trainer.config import OptimConfig, ScheduleConfig

__all__ = [
    "build_optimizer",
    "build_scheduler",
    "clip_grad_norm",
    "lr_factor",
    "param_groups",
]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices with ``weight_decay``, norms and biases without."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or name.endswith(".bias"):
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over ``model``'s parameters; fused kernels on CUDA."""
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
        fused=device.type == "cuda",
    )


def lr_factor(step: int, cfg: ScheduleConfig, total_steps: int) -> float:
    """The LR multiplier for optimizer step ``step`` (0-based) of ``total_steps``.

    Warmup rises linearly to 1 over ``warmup_steps`` (the first step already gets
    1/warmup, never 0); then cosine or linear decay to ``min_lr_ratio``, a constant
    1, or warmup-stable-decay: 1 until the last ``decay_fraction`` of the steps,
    then linear to ``min_lr_ratio``.
    """
    warmup = cfg.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    floor = cfg.min_lr_ratio
    if cfg.kind == "constant":
        return 1.0
    if cfg.kind == "wsd":
        decay_steps = max(1, math.ceil(cfg.decay_fraction * total_steps))
        decay_start = max(warmup, total_steps - decay_steps)
        if step < decay_start:
            return 1.0
        progress = min(1.0, (step - decay_start + 1) / max(1, total_steps - decay_start))
        return 1.0 - (1.0 - floor) * progress
    # Progress reaches 1 on the last step, so the run ends exactly at the floor.
    span = max(1, total_steps - warmup - 1)
    progress = min(1.0, (step - warmup) / span)
    if cfg.kind == "linear":
        return 1.0 - (1.0 - floor) * progress
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_steps: int
) -> LambdaLR:
    """A LambdaLR stepping once per optimizer step with :func:`lr_factor`."""
    fn: Callable[[int], float] = lambda step: lr_factor(step, cfg, total_steps)  # noqa: E731
    return LambdaLR(optimizer, fn)


def clip_grad_norm(params: list[torch.nn.Parameter], max_norm: float) -> float:
    """Global L2 norm over all ranks' shards; clip to ``max_norm`` when it is > 0."""
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads, norm_type=2.0, foreach=True)
    if isinstance(total, DTensor):
        total = total.full_tensor()  # the Partial norm reduced across ranks
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total, foreach=True)
    return float(total)
