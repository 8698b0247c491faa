"""Check that a base model loads, without downloading anything or loading weights.

A source is either an absolute local directory or a Hugging Face hub id that is
already in the local cache (resolved with ``local_files_only=True``). The config
and the tokenizer must load; the parameter count comes from building the model
on the ``meta`` device, which allocates no memory for weights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[\w.-]{1,96})?$")


class ModelCheckError(Exception):
    """The model does not load; the message says why."""


@dataclass
class ModelInfo:
    """What the model page shows about a base model."""

    path: str
    architecture: str
    num_params: int | None
    vocab_size: int | None
    max_context: int | None
    details: dict[str, Any] = field(default_factory=dict)


def is_local_source(source: str) -> bool:
    """Whether a model source names a local directory (else it is a hub id)."""
    return source.strip().startswith(("/", "~", "."))


def check_model_root(path: str | Path) -> Path:
    """``path`` resolved (symlinks followed); :class:`ModelCheckError` unless it lies under
    one of ``BASE_MODEL_ROOTS``. An empty setting allows any folder.

    Registration checks the source with it, and launching a run checks the registered
    model's path again: the setting may have narrowed, or a symlink moved, since.
    """
    resolved = Path(path).expanduser().resolve()
    roots = [Path(r).resolve() for r in getattr(settings, "BASE_MODEL_ROOTS", [])]
    if roots and not any(resolved.is_relative_to(r) for r in roots):
        raise ModelCheckError("local models must be under " + ", ".join(str(r) for r in roots))
    return resolved


def resolve_source(source: str) -> Path:
    """The directory ``from_pretrained`` should load for ``source`` (never downloads)."""
    source = source.strip()
    if not source:
        raise ModelCheckError("source: give a local directory or a hub id")
    if is_local_source(source):
        path = Path(source).expanduser()
        if not path.is_absolute():
            raise ModelCheckError("source: a local directory must be an absolute path")
        try:
            path = check_model_root(path)
        except ModelCheckError as exc:
            raise ModelCheckError(f"source: {exc}") from None
        if not path.is_dir():
            raise ModelCheckError(f"source: {path} is not a directory on the server")
        if not (path / "config.json").is_file():
            raise ModelCheckError(f"source: {path} has no config.json")
        return path
    if not HUB_ID_RE.match(source):
        raise ModelCheckError(f"source: {source!r} is neither an absolute path nor a hub id")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError and friends: never fall back to a download
        raise ModelCheckError(
            f"source: hub id {source!r} is not in the local Hugging Face cache "
            f"(nothing is downloaded): {type(exc).__name__}"
        ) from None


def count_parameters(config: Any) -> int | None:
    """Parameters of the causal LM ``config`` describes, built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except Exception:  # an architecture transformers cannot build: report what we know
        return None
    return sum(p.numel() for p in model.parameters())


def probe_model(source: str) -> ModelInfo:
    """Load config and tokenizer of ``source``; raise :class:`ModelCheckError` saying why not."""
    path = resolve_source(source)
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        raise ModelCheckError(f"config does not load: {exc}") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        raise ModelCheckError(f"tokenizer does not load: {exc}") from None
    architectures = getattr(config, "architectures", None) or []
    max_context = getattr(config, "max_position_embeddings", None)
    return ModelInfo(
        path=str(path),
        architecture=architectures[0] if architectures else config.model_type,
        num_params=count_parameters(config),
        vocab_size=getattr(config, "vocab_size", None) or len(tokenizer),
        max_context=max_context,
        details={
            "model_type": config.model_type,
            "hidden_size": getattr(config, "hidden_size", None),
            "num_layers": getattr(config, "num_hidden_layers", None),
            "tokenizer_class": type(tokenizer).__name__,
            "tokenizer_size": len(tokenizer),
            "eos_token": tokenizer.eos_token,
            "bos_token": tokenizer.bos_token,
        },
    )
