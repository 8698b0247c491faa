"""Tiny models and tokenizers built locally, so nothing is ever downloaded.

Used by the tests, the benchmarks and the web app's ``create_demo_model``
command: a byte-level BPE tokenizer trained with ``tokenizers`` on a small
corpus plus a randomly initialised Llama saved with ``save_pretrained``.

CLI: ``python -m trainer.demo OUT_DIR [--vocab-size 512] [--hidden 64] [--layers 2]``.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["demo_texts", "build_tokenizer", "build_tiny_model", "write_jsonl"]


def demo_texts(limit: int = 2000) -> Iterator[str]:
    """English text that ships with Python itself: docstrings of standard-library modules."""
    import collections
    import email
    import http.client
    import json as json_mod
    import logging
    import os
    import pathlib
    import re
    import subprocess
    import textwrap
    import typing
    import unittest

    modules = [
        collections,
        email,
        http.client,
        json_mod,
        logging,
        os,
        pathlib,
        re,
        subprocess,
        textwrap,
        typing,
        unittest,
    ]
    seen = 0
    for module in modules:
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj)
            if doc and len(doc) > 40:
                yield doc
                seen += 1
                if seen >= limit:
                    return


def build_tokenizer(out_dir: str | Path, texts: Iterable[str], vocab_size: int = 512):
    """Train a byte-level BPE tokenizer and save it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    fast.save_pretrained(str(out_dir))
    return fast


def build_tiny_model(
    out_dir: str | Path,
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_position_embeddings: int = 2048,
    texts: Iterable[str] | None = None,
    seed: int = 0,
) -> Path:
    """A random-weight Llama plus its tokenizer in ``out_dir``, loadable with from_pretrained."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(
        out, texts if texts is not None else demo_texts(), vocab_size=vocab_size
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(out))
    return out


def write_jsonl(path: str | Path, texts: Iterable[str], field: str = "text") -> Path:
    """Write one JSON object a line with ``field`` holding each text."""
    p = Path(path)
    with p.open("w", encoding="utf-8") as f:
        for text in texts:
            f.write(json.dumps({field: text}, ensure_ascii=False) + "\n")
    return p


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument(
        "--corpus-out", help="Also write a demo JSONL corpus here (first 500 docs, repeated)."
    )
    args = parser.parse_args(argv)
    path = build_tiny_model(
        args.out_dir,
        vocab_size=args.vocab_size,
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
    )
    if args.corpus_out:
        write_jsonl(args.corpus_out, itertools.islice(demo_texts(), 500))
    print(path)


if __name__ == "__main__":
    main()
