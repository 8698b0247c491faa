"""How fast checkpoints are read outside training: load, export, evaluate, generate.

Builds a small random Llama (``--hidden``/``--layers``/``--vocab``), saves a DCP
checkpoint of it in one process the way the training loop lays it out
(``run/checkpoints/step-000001`` + ``run/config.yaml``), prepares a val corpus
from the demo texts, then times (best of ``--repeat``):

- ``load_model(checkpoint)`` (no random init; DCP into the empty model) next to
  ``from_pretrained`` of the base model, for scale;
- ``export_checkpoint`` (load + safetensors + tokenizer + rename);
- ``evaluate_model``: tokens/s scored;
- ``generate_text``: new tokens/s, greedy and sampled.

Prints one JSON line of figures (wall seconds, and CPU seconds where the
machine is shared).

    .venv/bin/python bench/inference_speed.py [--hidden 256] [--layers 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer.config import dump_config, parse_config  # noqa: E402
from trainer.demo import build_tiny_model, demo_texts, write_jsonl  # noqa: E402
from trainer.evaluate import evaluate_model  # noqa: E402
from trainer.export import export_checkpoint  # noqa: E402
from trainer.generate import generate_text  # noqa: E402
from trainer.inference import load_model  # noqa: E402
from trainer.prepare import prepare_corpus  # noqa: E402


def timed(fn, repeat: int):
    """(result, best wall seconds, CPU seconds of that run)."""
    best = (None, float("inf"), 0.0)
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        if wall < best[1]:
            best = (out, wall, cpu)
    return best


def write_checkpoint(root: Path, base: Path) -> Path:
    import torch.distributed.checkpoint as dcp
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base))
    ckpt = root / "run" / "checkpoints" / "step-000001"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"model": model.state_dict()}, checkpoint_id=str(ckpt))
    (ckpt / "meta.json").write_text(json.dumps({"step": 1}))
    cfg = parse_config({"model": {"path": str(base)}, "data": {"corpora": [{"path": "x"}]}})
    (root / "run" / "config.yaml").write_text(dump_config(cfg))
    return ckpt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--eval-batches", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = build_tiny_model(
            root / "base",
            vocab_size=args.vocab,
            hidden_size=args.hidden,
            num_layers=args.layers,
            num_heads=max(1, args.hidden // 64),
        )
        ckpt = write_checkpoint(root, base)
        jsonl = write_jsonl(root / "docs.jsonl", itertools.islice(demo_texts(), 2000))
        corpus = prepare_corpus([jsonl], base, root / "prepared", val_fraction=0.3, workers=1)

        _, base_s, _ = timed(lambda: AutoModelForCausalLM.from_pretrained(str(base)), args.repeat)
        loaded, load_s, load_cpu = timed(lambda: load_model(ckpt, device=args.device), args.repeat)
        params = sum(p.numel() for p in loaded.model.parameters())
        export, export_s, export_cpu = timed(
            lambda: export_checkpoint(ckpt, root / "export", overwrite=True), args.repeat
        )
        ev, eval_s, eval_cpu = timed(
            lambda: evaluate_model(
                loaded, corpus, seq_len=args.seq_len, batches=args.eval_batches, batch_size=4
            ),
            args.repeat,
        )
        greedy, greedy_s, _ = timed(
            lambda: generate_text(
                loaded, "Return the", temperature=0, max_new_tokens=args.new_tokens
            ),
            args.repeat,
        )
        sampled, sampled_s, _ = timed(
            lambda: generate_text(
                loaded, "Return the", temperature=1.0, top_p=0.95, seed=1,
                max_new_tokens=args.new_tokens,
            ),
            args.repeat,
        )  # fmt: skip

    print(
        json.dumps(
            {
                "device": str(loaded.device),
                "torch_threads": torch.get_num_threads(),
                "params": params,
                "base_from_pretrained_s": round(base_s, 3),
                "checkpoint_load_s": round(load_s, 3),
                "checkpoint_load_cpu_s": round(load_cpu, 3),
                "export_s": round(export_s, 3),
                "export_cpu_s": round(export_cpu, 3),
                "export_bytes": export["bytes"],
                "eval_tokens": ev["tokens"],
                "eval_tokens_per_s": round(ev["tokens"] / eval_s),
                "eval_tokens_per_cpu_s": round(ev["tokens"] / eval_cpu),
                "greedy_new_tokens_per_s": round(greedy["new_tokens"] / greedy_s, 1),
                "sampled_new_tokens_per_s": round(sampled["new_tokens"] / sampled_s, 1),
                "greedy_new_tokens": greedy["new_tokens"],
                "sampled_new_tokens": sampled["new_tokens"],
            }
        )
    )


if __name__ == "__main__":
    main()
