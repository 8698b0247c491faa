"""Helpers for the trainer tests: a prepared corpus and a run config, built on the spot.

The corpus is written directly in the prepared-corpus format of docs/CONTRACTS.md
(manifest + uint16 shards), tokenized with the tiny model's own tokenizer, so
these tests depend only on the reader API (trainer.shards), not on the
preparation pipeline.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_prepared_corpus(
    out_dir: Path, model_dir: Path, texts: list[str], val_every: int = 10
) -> Path:
    """Tokenize ``texts`` (EOS after each), every ``val_every``-th to val; write shards + manifest."""
    from transformers import AutoTokenizer

    from trainer.shards import tokenizer_fingerprint

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    splits: dict[str, list[int]] = {"train": [], "val": []}
    for i, text in enumerate(texts):
        ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        splits["val" if i % val_every == 0 else "train"].extend(ids)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "version": 1,
        "key": "test",
        "inputs": [],
        "text_field": "text",
        "tokenizer": {
            "name_or_path": str(model_dir),
            "fingerprint": tokenizer_fingerprint(model_dir),
            "vocab_size": len(tok),
            "eos_token_id": tok.eos_token_id,
            "bos_token_id": tok.bos_token_id,
            "add_bos": False,
        },
        "dtype": "uint16",
        "counts": {"documents_read": len(texts), "kept": len(texts)},
        "splits": {},
    }
    for name, ids in splits.items():
        file = f"{name}-00000.bin"
        np.asarray(ids, dtype="<u2").tofile(out_dir / file)
        manifest["splits"][name] = {
            "tokens": len(ids),
            "shards": [{"file": file, "tokens": len(ids)}],
        }
    (out_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return out_dir


def demo_doc_texts(start: int, count: int) -> list[str]:
    """A slice of the demo corpus (standard-library docstrings)."""
    from trainer.demo import demo_texts

    return list(itertools.islice(demo_texts(), start, start + count))


def run_config(model_dir: Path, corpora: list[tuple[Path, float]], **overrides: Any) -> dict:
    """A small, fast TrainConfig dict; ``overrides`` are dotted keys (``optim.lr``)."""
    cfg: dict[str, Any] = {
        "name": "test",
        "seed": 7,
        "log_interval": 1,
        "model": {"path": str(model_dir)},
        "data": {
            "corpora": [{"path": str(p), "weight": w} for p, w in corpora],
            "seq_len": 32,
            "micro_batch_size": 2,
            "grad_accum_steps": 2,
        },
        "optim": {"lr": 3e-3, "weight_decay": 0.1, "grad_clip": 1.0},
        "schedule": {"total_steps": 12, "warmup_steps": 2, "kind": "cosine"},
        "eval": {"interval": 4, "batches": 2},
        "checkpoint": {"interval": 4, "keep": 2},
        "parallel": {"nproc_per_node": 2, "device": "cpu"},
    }
    for dotted, value in overrides.items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    """Write a config dict as YAML."""
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def train_command(nproc: int, config: Path, run_dir: Path, *extra: str) -> list[str]:
    """``torchrun --nproc-per-node N -m trainer.train ...`` (plain python for one rank)."""
    if nproc == 1:
        head = [sys.executable, "-m", "trainer.train"]
    else:
        head = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(nproc), "-m", "trainer.train",
        ]  # fmt: skip
    return [*head, "--config", str(config), "--run-dir", str(run_dir), *extra]


def child_env() -> dict[str, str]:
    """Environment for trainer subprocesses: one thread each (2 cores shared), offline HF."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1"
    )
    return env


def run_train(
    nproc: int, config: Path, run_dir: Path, *extra: str, timeout: float = 240
) -> subprocess.CompletedProcess:
    """Run the trainer to completion; output captured."""
    return subprocess.run(
        train_command(nproc, config, run_dir, *extra),
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def losses_by_step(events: list[dict]) -> dict[int, float]:
    """step -> loss from metric events (a resumed run's later events win)."""
    return {e["step"]: e["data"]["loss"] for e in events if e["kind"] == "metric"}
