"""Model FLOPs utilisation (MFU) with the torchtitan convention.

FLOPs per token = 6 * N + 12 * L * H * Q * T, where N is the parameter count
without the input embedding (a lookup, not a matmul; a tied output head is
still a matmul, so it stays counted), L layers, H attention heads, Q head
dimension and T the sequence length (the attention score and value matmuls).
MFU = achieved FLOPs per second / the device's dense bf16 peak. There is no
meaningful peak for a CPU, so MFU is absent there.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PEAK_BF16_FLOPS", "flops_per_token", "mfu", "peak_flops"]

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, matched
# against torch.cuda.get_device_name() in order (the first substring that matches).
PEAK_BF16_FLOPS: list[tuple[str, float]] = [
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM / NVL
    ("H800", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("MI300X", 1307e12),
    ("MI250X", 383e12),
]


def peak_flops(device: torch.device) -> float | None:
    """The device's peak dense bf16 FLOP/s, or None (CPU, or a GPU not in the table)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_FLOPS:
        if key in name:
            return value
    return None


def flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward) for a Hugging Face decoder model."""
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    dense = params - (0 if tied else embed)
    layers = cfg.num_hidden_layers
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return 6.0 * dense + 12.0 * layers * heads * head_dim * seq_len


def mfu(
    tokens_per_s: float, per_token: float, peak: float | None, world_size: int = 1
) -> float | None:
    """Achieved / peak FLOPs; ``tokens_per_s`` is the whole job's rate over ``world_size`` devices."""
    if not peak:
        return None
    return tokens_per_s * per_token / (peak * world_size)
