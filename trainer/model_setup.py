"""Load the pretrained model and parallelize it with FSDP2.

Kept apart from the loop (torchtitan's ``parallelize``): the model is loaded with
``from_pretrained`` in fp32 master weights; each decoder layer is optionally
wrapped for activation checkpointing and compiled, then ``fully_shard``-ed, and
finally the root (embeddings, final norm, output head) is sharded through
:class:`CausalLMLoss`, which computes the loss from the hidden states without
materialising full logits. Parameter names stay the plain Hugging Face ones
(checkpoint wrappers and ``Module.compile`` add no prefixes to state dicts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from trainer.config import ModelConfig
from trainer.loss import IGNORE_INDEX, chunked_linear_cross_entropy

__all__ = [
    "CausalLMLoss",
    "check_tokenizer",
    "compute_dtype",
    "decoder_layers",
    "broadcast_weights",
    "load_model",
    "parallelize",
]


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """bf16 for ``bf16`` (or ``auto`` on CUDA), else fp32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def load_model(path: str, *, on_meta: bool = False) -> nn.Module:
    """The pretrained causal LM in fp32 (master weights) on the CPU, from disk only.

    ``on_meta`` builds the same architecture without weights (no memory): ranks
    other than 0 do that, and :func:`broadcast_weights` fills them in after sharding,
    so a node holds one full copy of the model in host memory, not one per rank.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    if on_meta:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(
                config, dtype=torch.float32, attn_implementation="sdpa"
            )
    else:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.float32, attn_implementation="sdpa", local_files_only=True
        )
    model.config.use_cache = False
    return model


def broadcast_weights(
    lm: nn.Module, full_state: dict[str, torch.Tensor] | None, device: torch.device
) -> None:
    """After sharding, give every rank its shards of rank 0's weights (all ranks call it).

    ``full_state`` is rank 0's unsharded state dict (None elsewhere, where ``lm``
    is on the meta device). Buffers that are not in a state dict (rotary
    frequencies) are broadcast too.
    """
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    if dist.get_rank() != 0:
        lm.to_empty(device=device)
    set_model_state_dict(
        lm,
        full_state or {},
        options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True),
    )
    for buffer in lm.buffers():
        dist.broadcast(buffer, src=0)


def check_tokenizer(model_path: str, corpora: Sequence[Any], vocab_rows: int) -> None:
    """The base model's tokenizer must be the one each prepared corpus was tokenized with.

    ``corpora`` are :class:`trainer.shards.PreparedCorpus`; raises ValueError naming
    ``data.corpora.<i>.path``.
    """
    from trainer.shards import tokenizer_fingerprint

    fingerprint = tokenizer_fingerprint(model_path)
    for i, corpus in enumerate(corpora):
        tok = corpus.tokenizer
        if tok.get("fingerprint") != fingerprint:
            raise ValueError(
                f"data.corpora.{i}.path: {corpus.path} was tokenized with "
                f"{tok.get('name_or_path')!r} (fingerprint {str(tok.get('fingerprint'))[:12]}), "
                f"not the tokenizer of {model_path} ({fingerprint[:12]}); prepare it again"
            )
        if int(tok.get("vocab_size", 0)) > vocab_rows:
            raise ValueError(
                f"data.corpora.{i}.path: tokenizer vocabulary {tok.get('vocab_size')} exceeds "
                f"the model's {vocab_rows} embedding rows"
            )


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a Hugging Face causal LM (``model.model.layers``)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError("model.path: expected a decoder-only model with model.layers")
    return layers


class CausalLMLoss(nn.Module):
    """Root module for FSDP: runs the decoder and returns (sum of token losses, tokens)."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum of cross-entropy over ``labels`` (IGNORE_INDEX skipped) and the count of targets."""
        hidden = self.lm.model(input_ids=input_ids, use_cache=False).last_hidden_state
        head = self.lm.get_output_embeddings()
        if getattr(head, "bias", None) is not None:
            raise ValueError("model.path: output heads with a bias are not supported")
        loss_sum = chunked_linear_cross_entropy(hidden, head.weight, labels)
        return loss_sum, (labels != IGNORE_INDEX).sum()


def parallelize(
    lm: nn.Module, cfg: ModelConfig, device: torch.device, world_size: int
) -> CausalLMLoss:
    """Shard ``lm`` with FSDP2 (per decoder layer, then the root) and return the loss root.

    The parameters stay fp32 master weights; with bf16 they are gathered and used in
    bf16 while gradients are reduced in fp32 (MixedPrecisionPolicy).
    """
    mesh = init_device_mesh(device.type, (world_size,))
    dtype = compute_dtype(cfg.precision, device)
    mp = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if dtype == torch.bfloat16
        else MixedPrecisionPolicy()
    )
    layers = decoder_layers(lm)
    if cfg.compile:
        # Every layer shares one forward code object, and Hugging Face layers differ in
        # guarded attributes (layer_idx): without room for one graph per layer, Dynamo
        # stops recompiling after 8 and the remaining layers silently run eagerly.
        import torch._dynamo as dynamo

        limit = 2 * len(layers) + 8
        dynamo.config.recompile_limit = max(dynamo.config.recompile_limit, limit)
    for i, layer in enumerate(layers):
        block: nn.Module = layer
        if cfg.activation_checkpointing:
            block = checkpoint_wrapper(block)
        if cfg.compile:
            block.compile()
        # The last layer's parameters are needed again right away in backward.
        fully_shard(block, mesh=mesh, mp_policy=mp, reshard_after_forward=i < len(layers) - 1)
        layers[i] = block
    root = CausalLMLoss(lm)
    fully_shard(root, mesh=mesh, mp_policy=mp)
    return root
