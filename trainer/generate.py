"""Sample text from a checkpoint, an export or a base model.

``python -m trainer.generate --model PATH --prompt TEXT [--max-new-tokens 64]
[--temperature 0.8] [--top-p 0.95] [--seed N] [--device auto] [--dtype auto]``

Temperature 0 is greedy decoding (top-p is then unused). Generation stops at
the tokenizer's EOS or after ``max_new_tokens``. Prints one JSON line:
``{"text": <the continuation, without the prompt>, "prompt", "new_tokens",
"finish_reason": "eos" | "length", "seed", "model", "source", "step", ...}``.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig

from trainer.inference import InferenceError, LoadedModel, load_model, run_cli

__all__ = ["generate_text", "main"]

MAX_PROMPT_CHARS = 100_000
MAX_NEW_TOKENS = 4096
MAX_TEMPERATURE = 5.0


def check_sampling_args(
    prompt: str, max_new_tokens: int, temperature: float, top_p: float, seed: int | None
) -> None:
    """Raise :class:`InferenceError` naming the first out-of-range argument."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InferenceError("prompt: must not be empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InferenceError(f"prompt: longer than {MAX_PROMPT_CHARS} characters")
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise InferenceError(
            f"max_new_tokens: must be between 1 and {MAX_NEW_TOKENS}, got {max_new_tokens}"
        )
    # "not (a <= x <= b)" is also true for NaN.
    if not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise InferenceError(
            f"temperature: must be between 0 and {MAX_TEMPERATURE}, got {temperature}"
        )
    if not 0.0 < top_p <= 1.0:
        raise InferenceError(f"top_p: must be in (0, 1], got {top_p}")
    if seed is not None and not 0 <= seed < 2**63:
        raise InferenceError(f"seed: must be between 0 and 2**63-1, got {seed}")


def generate_text(
    model: str | Path | LoadedModel,
    prompt: str,
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
) -> dict[str, Any]:
    """Continue ``prompt`` with ``model`` (a path or an already loaded model); see module doc.

    A given seed gives the same text on the same device; without one a seed is
    drawn and reported, so any sample can be reproduced.
    """
    check_sampling_args(prompt, max_new_tokens, temperature, top_p, seed)
    loaded = (
        model if isinstance(model, LoadedModel) else load_model(model, device=device, dtype=dtype)
    )
    tokenizer = loaded.tokenizer
    input_ids = tokenizer(prompt, return_tensors="pt").input_ids.to(loaded.device)
    max_pos = getattr(loaded.model.config, "max_position_embeddings", None)
    if max_pos is not None and input_ids.shape[1] + max_new_tokens > max_pos:
        raise InferenceError(
            f"prompt: {input_ids.shape[1]} tokens + max_new_tokens {max_new_tokens} exceed "
            f"the model's context of {max_pos} tokens"
        )
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)

    eos_ids = _eos_ids(loaded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    gen_config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        eos_token_id=eos_ids,
        pad_token_id=pad,
        **(
            {"do_sample": True, "temperature": temperature, "top_p": top_p}
            if temperature > 0
            else {"do_sample": False}
        ),
    )
    devices = [loaded.device] if loaded.device.type == "cuda" else []
    lm = loaded.model
    # generate() fills unset fields from model.generation_config (a base model's top_k,
    # repetition_penalty, ...). Blank it so the arguments above are the whole recipe and a
    # sample can be reproduced from them alone.
    saved_config, lm.generation_config = lm.generation_config, GenerationConfig()
    # A private RNG state: a worker process's global RNG is left as it was.
    try:
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            output = lm.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=gen_config,
            )
    finally:
        lm.generation_config = saved_config
    new = output[0, input_ids.shape[1] :].tolist()
    stop = next((i for i, t in enumerate(new) if t in eos_ids), None)
    finish = "length" if stop is None else "eos"
    new = new if stop is None else new[:stop]
    return {
        "text": tokenizer.decode(new, skip_special_tokens=True),
        "prompt": prompt,
        "new_tokens": len(new),
        "finish_reason": finish,
        "seed": seed,
        "temperature": temperature,
        "top_p": top_p,
        **loaded.summary(),
    }


def _eos_ids(loaded: LoadedModel) -> list[int]:
    """Every id that ends a document: the tokenizer's EOS and the model's generation EOS ids."""
    ids: list[int] = []
    for value in (
        loaded.tokenizer.eos_token_id,
        getattr(loaded.model.generation_config, "eos_token_id", None),
        getattr(loaded.model.config, "eos_token_id", None),
    ):
        for i in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(i, int) and i not in ids:
                ids.append(i)
    if not ids:
        raise InferenceError(f"{loaded.path}: the tokenizer has no EOS token")
    return ids


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Checkpoint folder, export or base model.")
    parser.add_argument("--prompt", required=True, help="Text to continue.")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy.")
    parser.add_argument("--top-p", type=float, default=0.95, help="Nucleus sampling mass.")
    parser.add_argument("--seed", type=int, default=None, help="For a reproducible sample.")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    parser.add_argument("--dtype", default="auto", help="auto, fp32, bf16 or fp16.")
    args = parser.parse_args(argv)
    return run_cli(
        lambda: generate_text(
            args.model,
            args.prompt,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            device=args.device,
            dtype=args.dtype,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
