"""Validation loss and perplexity of a checkpoint, an export or a base model.

``python -m trainer.evaluate --model PATH --corpus PREPARED_DIR [--seq-len N]
[--batches 20] [--batch-size 4] [--device auto] [--dtype auto]``

Reads the prepared corpus's ``val`` split (``trainer.shards``) as consecutive
windows of ``seq_len + 1`` tokens, the first ``batches * batch_size`` of them,
and reports the token-weighted mean next-token cross-entropy over all of them
and its exponential (perplexity). Windows do not overlap, so every val token is
predicted at most once. Prints one JSON line: ``{"val_loss", "val_ppl",
"tokens", "windows", "batches", "batch_size", "seq_len", "tokenizer_match",
"model", "source", "step", ...}``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.inference import InferenceError, LoadedModel, load_model, run_cli

__all__ = ["evaluate_model", "main"]

DEFAULT_SEQ_LEN = 1024
MAX_BATCHES = 100_000
MAX_BATCH_SIZE = 4096


def evaluate_model(
    model: str | Path | LoadedModel,
    corpus: str | Path,
    *,
    seq_len: int | None = None,
    batches: int = 20,
    batch_size: int = 4,
    device: str = "auto",
    dtype: str = "auto",
) -> dict[str, Any]:
    """Val loss/perplexity of ``model`` (a path, or an already loaded model) on ``corpus``.

    ``seq_len`` defaults to the run's ``data.seq_len`` for a checkpoint, else to
    min(1024, the model's max positions).
    """
    from trainer.shards import CorpusFormatError, PreparedCorpus

    if not 1 <= batches <= MAX_BATCHES:
        raise InferenceError(f"batches: must be between 1 and {MAX_BATCHES}, got {batches}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InferenceError(
            f"batch_size: must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}"
        )
    if seq_len is not None and seq_len < 1:
        raise InferenceError(f"seq_len: must be at least 1, got {seq_len}")
    try:
        prepared = PreparedCorpus(corpus)
        val = prepared.split("val")
    except (CorpusFormatError, OSError, KeyError, TypeError, ValueError) as exc:
        # A hand-edited or truncated manifest can fail in any of these ways.
        raise InferenceError(f"corpus: {exc!s}") from None

    loaded = (
        model if isinstance(model, LoadedModel) else load_model(model, device=device, dtype=dtype)
    )
    max_pos = getattr(loaded.model.config, "max_position_embeddings", None)
    if seq_len is None:
        seq_len = loaded.run_config.data.seq_len if loaded.run_config is not None else None
        seq_len = seq_len or min(DEFAULT_SEQ_LEN, max_pos or DEFAULT_SEQ_LEN)
    if max_pos is not None and seq_len > max_pos:
        raise InferenceError(
            f"seq_len: {seq_len} exceeds the model's max_position_embeddings ({max_pos})"
        )
    available = (len(val) - 1) // seq_len
    if available < 1:
        raise InferenceError(
            f"corpus: the val split has {len(val)} tokens, too few for one window of "
            f"seq_len {seq_len} (+1); lower --seq-len or prepare a larger val split"
        )
    windows = min(batches * batch_size, available)
    _check_token_range(val, windows * seq_len + 1, loaded, corpus)
    tokenizer_match = _tokenizer_matches(prepared, loaded)
    if not tokenizer_match:
        print(
            f"warning: {corpus} was prepared with another tokenizer than {loaded.path}'s",
            file=sys.stderr,
        )

    # Summed on the device in fp64: no host sync per row, no drift over many batches.
    loss_sum = torch.zeros((), dtype=torch.float64, device=loaded.device)
    n_tokens = 0
    n_batches = 0
    with torch.inference_mode():
        for start in range(0, windows, batch_size):
            rows = min(batch_size, windows - start)
            # One contiguous read: window w is tokens [w*seq_len, (w+1)*seq_len + 1).
            flat = val[start * seq_len : (start + rows) * seq_len + 1].astype(np.int64)
            data = torch.from_numpy(flat).to(loaded.device)
            idx = torch.arange(rows, device=loaded.device)[:, None] * seq_len
            chunk = data[idx + torch.arange(seq_len + 1, device=loaded.device)]
            logits = loaded.model(input_ids=chunk[:, :-1]).logits
            # Upcast one row at a time: a 128k vocabulary makes fp32 logits of a whole
            # batch (rows x seq_len x vocab x 4 bytes) several GB.
            for row in range(rows):
                loss_sum += torch.nn.functional.cross_entropy(
                    logits[row].float(), chunk[row, 1:], reduction="sum"
                )
            n_tokens += rows * seq_len
            n_batches += 1

    val_loss = loss_sum.item() / n_tokens
    return {
        "val_loss": val_loss,
        # exp overflows past ~709; a diverged model should still give a JSON number.
        "val_ppl": math.exp(min(val_loss, 700.0)),
        "tokens": n_tokens,
        "windows": windows,
        "batches": n_batches,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "val_tokens_available": len(val),
        "tokenizer_match": tokenizer_match,
        "corpus": str(corpus),
        **loaded.summary(),
    }


def _check_token_range(val: Any, n: int, loaded: LoadedModel, corpus: str | Path) -> None:
    """Token ids past the embedding table would crash (or silently index) on device."""
    vocab = loaded.model.get_input_embeddings().num_embeddings
    top = int(val[:n].max())
    if top >= vocab:
        raise InferenceError(
            f"corpus: {corpus} holds token id {top} but the model's vocabulary has {vocab} "
            "entries: it was prepared with another tokenizer"
        )


def _tokenizer_matches(prepared: Any, loaded: LoadedModel) -> bool:
    """Whether the corpus's tokenizer fingerprint is the model's (or its base model's)."""
    from trainer.shards import tokenizer_fingerprint

    expected = (prepared.manifest.get("tokenizer") or {}).get("fingerprint")
    if not expected:
        return False
    # An export re-saves the tokenizer, which may reorder its JSON: try the base model too.
    for candidate in dict.fromkeys([loaded.path, loaded.base_model]):
        try:
            if tokenizer_fingerprint(candidate) == expected:
                return True
        except (OSError, ValueError):
            continue
    return False


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Checkpoint folder, export or base model.")
    parser.add_argument("--corpus", required=True, help="Prepared corpus folder (manifest.json).")
    parser.add_argument("--seq-len", type=int, default=None, help="Tokens per window.")
    parser.add_argument("--batches", type=int, default=20, help="Batches to evaluate.")
    parser.add_argument("--batch-size", type=int, default=4, help="Windows per batch.")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    parser.add_argument("--dtype", default="auto", help="auto, fp32, bf16 or fp16.")
    args = parser.parse_args(argv)
    return run_cli(
        lambda: evaluate_model(
            args.model,
            args.corpus,
            seq_len=args.seq_len,
            batches=args.batches,
            batch_size=args.batch_size,
            device=args.device,
            dtype=args.dtype,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
