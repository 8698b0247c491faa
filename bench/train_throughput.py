"""Training throughput of the trainer's own step on a Llama-shaped model: tokens/s, MFU, memory.

    python bench/train_throughput.py --size tiny --steps 10 --seq-len 128
    python bench/train_throughput.py --size 125m --steps 30 --seq-len 2048 --compile
    python bench/train_throughput.py --size 1b --steps 20 --seq-len 2048 --compile --nproc 8

Runs exactly what ``trainer.train`` runs per step (FSDP2 per layer + root,
bf16 MixedPrecisionPolicy on CUDA / fp32 on CPU, optional activation
checkpointing and per-layer compile, chunked linear cross-entropy, AdamW fused
on CUDA, global-norm clipping) on random tokens and random weights, so nothing
is downloaded. The first ``--warmup`` steps (compilation, allocator) are not
timed. Prints one human line and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Llama shapes: tiny (CPU smoke test), ~125M (GPT-2 small width), 1B (Llama 3.2 1B).
SIZES: dict[str, dict[str, int | bool]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=4, vocab_size=512,
                 tie_word_embeddings=False),
    "125m": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                 num_attention_heads=12, num_key_value_heads=12, vocab_size=32000,
                 tie_word_embeddings=True),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
               num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
               tie_word_embeddings=True),
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--steps", type=int, default=10, help="Timed optimizer steps.")
    p.add_argument("--warmup", type=int, default=3, help="Untimed steps first.")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--micro-batch", type=int, default=None, help="Default: 8 on CUDA, 2 on CPU.")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="torch.compile each decoder layer.")
    p.add_argument("--ac", action="store_true", help="Activation checkpointing per layer.")
    p.add_argument("--nproc", type=int, default=1, help="Ranks (relaunches under torchrun).")
    args = p.parse_args(argv)
    for name in ("steps", "seq_len", "nproc", "grad_accum"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def bench(args: argparse.Namespace) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.config import ModelConfig, OptimConfig
    from trainer.distributed import all_reduce_sum, init_distributed, teardown
    from trainer.flops import flops_per_token, mfu, peak_flops
    from trainer.model_setup import parallelize
    from trainer.optim import build_optimizer, clip_grad_norm

    info = init_distributed("auto")
    dev = info.device
    micro = args.micro_batch or (8 if dev.type == "cuda" else 2)
    torch.manual_seed(0)
    config = LlamaConfig(**SIZES[args.size], max_position_embeddings=max(2048, args.seq_len))
    config.use_cache = False
    lm = LlamaForCausalLM(config)
    lm.config._attn_implementation = "sdpa"
    per_token = flops_per_token(lm, args.seq_len)
    params = sum(p.numel() for p in lm.parameters())
    model_cfg = ModelConfig(path="bench", compile=args.compile, activation_checkpointing=args.ac)
    root = parallelize(lm, model_cfg, dev, info.world_size)
    optimizer = build_optimizer(lm, OptimConfig(lr=1e-4), dev)
    trainable = [p for p in lm.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(info.rank)

    def step() -> float:
        total = 0.0
        for _ in range(args.grad_accum):
            batch = torch.randint(0, config.vocab_size, (micro, args.seq_len + 1), generator=gen)
            batch = batch.to(dev, non_blocking=True)
            loss_sum, _ = root(batch[:, :-1], batch[:, 1:])
            (loss_sum / (micro * args.seq_len * args.grad_accum)).backward()
            total += float(loss_sum.detach())
        clip_grad_norm(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return total

    for _ in range(args.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()  # float(loss) syncs each step, as the real loop's logging does
    if dev.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    tokens = args.steps * args.grad_accum * micro * args.seq_len * info.world_size
    (elapsed_sum,) = all_reduce_sum([elapsed], dev)  # rate over the mean elapsed time of the ranks
    rate = tokens / (elapsed_sum / info.world_size)
    if dev.type == "cuda":
        mem = torch.cuda.max_memory_allocated(dev) / 1e9
    else:
        import resource

        mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    result = {
        "size": args.size,
        "params": params,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "ranks": info.world_size,
        "seq_len": args.seq_len,
        "micro_batch": micro,
        "compile": args.compile,
        "activation_checkpointing": args.ac,
        "tokens_per_s": round(rate, 1),
        "mfu": mfu(rate, per_token, peak_flops(dev), info.world_size),
        "peak_mem_gb": round(mem, 3),
        "steps": args.steps,
    }
    teardown()
    return result if info.is_main else {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.nproc > 1 and "RANK" not in os.environ:
        # The ranks need no --nproc (torchrun's own parser would also trip over it).
        given = list(argv or sys.argv[1:])
        rest = [
            a
            for a, prev in zip(given, ["", *given], strict=False)
            if not a.startswith("--nproc") and prev != "--nproc"
        ]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(args.nproc), __file__, *rest]  # fmt: skip
        return subprocess.call(cmd)
    result = bench(args)
    if result:
        mfu_text = f"{result['mfu']:.3f}" if result["mfu"] is not None else "n/a (CPU)"
        print(
            f"{result['size']} ({result['params'] / 1e6:.1f}M params) on {result['device']} "
            f"x{result['ranks']}: {result['tokens_per_s']:.0f} tokens/s, MFU {mfu_text}, "
            f"peak memory {result['peak_mem_gb']:.2f} GB"
        )
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
