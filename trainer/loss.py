"""Cross-entropy straight from the last hidden state, in chunks of tokens.

The full [tokens, vocab] logits of a large-vocabulary model (128k entries per
token for Llama 3) are often the largest tensor of a step. Here the output
projection and the loss are computed a chunk of tokens at a time, and the
gradients for the hidden states and the head's weight are produced in the same
pass, so no chunk's logits outlive its iteration (the Liger-kernel idea, in
plain PyTorch). Returns the *sum* of token losses so callers can weight by
tokens across micro-batches and ranks.
"""

from __future__ import annotations

import torch

__all__ = ["IGNORE_INDEX", "chunked_linear_cross_entropy"]

IGNORE_INDEX = -100
# About 512 MB of fp32 logits per chunk at most.
_CHUNK_ELEMENTS = 2**27


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunk: int):  # type: ignore[override]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = (
            torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            if ctx.needs_input_grad[1]
            else None
        )
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start : start + chunk]
            y = labels[start : start + chunk]
            logits = (h @ weight.t()).float()
            valid = y != IGNORE_INDEX
            safe_y = torch.where(valid, y, 0)
            lse = torch.logsumexp(logits, dim=-1)
            target = logits.gather(1, safe_y[:, None]).squeeze(1)
            total += ((lse - target) * valid).sum()
            if grad_hidden is None and grad_weight is None:
                continue
            # d(sum loss)/d(logits) = softmax - onehot(label), zero for ignored tokens.
            grad_logits = torch.exp(logits - lse[:, None])
            grad_logits[torch.arange(len(y), device=y.device), safe_y] -= 1.0
            grad_logits *= valid[:, None]
            grad_logits = grad_logits.to(weight.dtype)
            if grad_hidden is not None:
                grad_hidden[start : start + chunk] = grad_logits @ weight
            if grad_weight is not None:
                grad_weight += (grad_logits.t() @ h).float()
        ctx.save_for_backward(
            grad_hidden if grad_hidden is not None else torch.empty(0),
            grad_weight.to(weight.dtype) if grad_weight is not None else torch.empty(0),
        )
        ctx.has = (grad_hidden is not None, grad_weight is not None)
        return total

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        grad_hidden, grad_weight = ctx.saved_tensors
        gh = grad_hidden * grad_output.to(grad_hidden.dtype) if ctx.has[0] else None
        gw = grad_weight * grad_output.to(grad_weight.dtype) if ctx.has[1] else None
        return gh, gw, None, None


def chunked_linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Sum over tokens of cross-entropy(hidden @ weight.T, labels), in fp32.

    ``hidden`` is [..., H], ``weight`` [V, H], ``labels`` [...] with
    ``IGNORE_INDEX`` for tokens that do not count.
    """
    h = hidden.reshape(-1, hidden.shape[-1])
    y = labels.reshape(-1)
    chunk = max(1, _CHUNK_ELEMENTS // weight.shape[0])
    return _ChunkedLinearCrossEntropy.apply(h, weight, y, chunk)
