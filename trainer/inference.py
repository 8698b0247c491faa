"""Loading a model outside training: from a checkpoint, an export or a base model.

One process, no process group, CPU or CUDA. :func:`load_model` accepts

- a DCP checkpoint folder ``<run-dir>/checkpoints/step-NNNNNN/`` (its ``.metadata``
  is the commit marker; the run's ``config.yaml`` two levels up names the base
  model, whose config and tokenizer are used and whose weights are replaced by
  the checkpoint's ``model`` state),
- an exported Hugging Face folder (``trainer.export``), or
- a base model: a local folder with ``config.json`` or a hub id already in the
  local cache (nothing is downloaded).

Used by ``trainer.export``, ``trainer.evaluate`` and ``trainer.generate``, which
also share the small CLI helpers at the end (one JSON result line on stdout).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = [
    "DTYPES",
    "EXPORT_INFO",
    "InferenceError",
    "LoadedModel",
    "checkpoint_state_keys",
    "find_source",
    "load_model",
    "load_run_config",
    "pick_device",
    "pick_dtype",
    "run_cli",
]

# Written by trainer.export next to the weights; its presence marks an export.
EXPORT_INFO = "export.json"
CONFIG_NAME = "config.yaml"
DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}

SourceKind = Literal["checkpoint", "export", "base"]


class InferenceError(ValueError):
    """A model path, argument or checkpoint that cannot be used; the message says why."""


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode) with its tokenizer and where it came from."""

    model: Any
    """The ``transformers`` causal LM, in eval mode, on ``device``."""
    tokenizer: Any
    """The fast tokenizer of the base model (or of the export)."""
    source: SourceKind
    """checkpoint, export or base."""
    path: str
    """The path (or hub id) that was loaded."""
    base_model: str
    """The base model's path or hub id (the config.yaml ``model.path`` for a checkpoint)."""
    device: torch.device
    dtype: torch.dtype
    step: int | None = None
    """Training step of a checkpoint or export; None for a base model."""
    meta: dict[str, Any] = field(default_factory=dict)
    """A checkpoint's meta.json (or an export's export.json); empty for a base model."""
    run_config: Any = None
    """The run's TrainConfig for a checkpoint; None otherwise."""

    def summary(self) -> dict[str, Any]:
        """JSON-ready description used in the CLIs' result lines."""
        return {
            "model": self.path,
            "source": self.source,
            "base_model": self.base_model,
            "step": self.step,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
        }


# -- arguments -----------------------------------------------------------------


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise InferenceError(f"device: {device} requested but CUDA is not available")
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InferenceError(
                f"device: {device} does not exist ({torch.cuda.device_count()} GPUs)"
            )
        return dev
    raise InferenceError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}")


def pick_dtype(dtype: str, device: torch.device, stored: torch.dtype | None = None) -> torch.dtype:
    """``auto`` = bf16 on a CUDA device that supports it, else fp32.

    ``store`` returns ``stored`` (the dtype the weights were saved in; fp32 if unknown),
    which is what an export wants: the weights exactly as trained.
    """
    if dtype == "store":
        return stored or torch.float32
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        # Half precision on CPU is slow and lossy: compute in fp32 there.
        return torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise InferenceError(
            f"dtype: expected auto, store or one of {', '.join(DTYPES)}, got {dtype!r}"
        ) from None


# -- what a path is --------------------------------------------------------------


def find_source(path: str | Path) -> SourceKind:
    """Classify ``path`` as a checkpoint, export or base model; raise if it is none of them."""
    p = Path(path)
    if p.is_dir():
        if (p / ".metadata").is_file():
            return "checkpoint"
        if (p / "config.json").is_file():
            return "export" if (p / EXPORT_INFO).is_file() else "base"
        if (p / "meta.json").is_file() or any(p.glob("*.distcp")) or p.name.startswith("step-"):
            raise InferenceError(
                f"{p} is not a complete checkpoint: no .metadata (the save did not "
                "finish or is still being written)"
            )
        if (p / "checkpoints").is_dir():
            committed = sorted(c.parent.name for c in (p / "checkpoints").glob("step-*/.metadata"))
            hint = f"e.g. {p / 'checkpoints' / committed[-1]}" if committed else "it has none yet"
            raise InferenceError(f"{p} is a run directory: pass one of its checkpoints ({hint})")
        raise InferenceError(
            f"{p} is neither a checkpoint (no .metadata) nor a Hugging Face model (no config.json)"
        )
    if p.exists():
        raise InferenceError(f"{p} is a file; expected a checkpoint or model directory")
    if _looks_like_hub_id(str(path)):
        return "base"
    raise InferenceError(f"{p} does not exist")


def _looks_like_hub_id(name: str) -> bool:
    # "org/name" or "name": no leading slash or dot, no "..", at most one "/".
    return (
        bool(name)
        and not name.startswith(("/", ".", "~"))
        and ".." not in name
        and name.count("/") <= 1
    )


def load_run_config(checkpoint: str | Path) -> Any:
    """The TrainConfig in ``config.yaml`` two levels above a checkpoint folder."""
    from trainer.config import ConfigError, load_config

    ckpt = Path(checkpoint).resolve()
    config_path = ckpt.parent.parent / CONFIG_NAME
    if not config_path.is_file():
        raise InferenceError(
            f"no {CONFIG_NAME} at {config_path}: a checkpoint must lie in "
            "<run-dir>/checkpoints/step-NNNNNN/ with the run's config.yaml in <run-dir>"
        )
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise InferenceError(f"{config_path}: {exc}") from None


def read_checkpoint_meta(checkpoint: str | Path) -> dict[str, Any]:
    """A checkpoint's meta.json (step, tokens_seen, loss, ...); empty if absent or unreadable."""
    f = Path(checkpoint) / "meta.json"
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def checkpoint_state_keys(checkpoint: str | Path) -> dict[str, Any]:
    """The checkpoint's model tensors: HF state-dict name -> DCP TensorStorageMetadata."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    try:
        metadata = dcp.FileSystemReader(str(checkpoint)).read_metadata()
    except Exception as exc:  # a truncated or foreign .metadata file
        raise InferenceError(f"{checkpoint}: cannot read DCP .metadata: {exc}") from None
    out: dict[str, Any] = {}
    for key, item in metadata.state_dict_metadata.items():
        if key.startswith("model.") and isinstance(item, TensorStorageMetadata):
            out[key.removeprefix("model.")] = item
    if not out:
        raise InferenceError(f"{checkpoint}: the checkpoint holds no 'model' state")
    return out


# -- loading ---------------------------------------------------------------------


def load_model(
    path: str | Path,
    *,
    device: str = "auto",
    dtype: str = "auto",
) -> LoadedModel:
    """Load a checkpoint, an export or a base model (see the module docstring) for inference."""
    kind = find_source(path)
    dev = pick_device(device)
    if kind == "checkpoint":
        loaded = _load_checkpoint(Path(path), dev, dtype)
    else:
        loaded = _load_pretrained(str(path), kind, dev, dtype)
    loaded.model.eval()
    loaded.model.requires_grad_(False)
    return loaded


def _load_tokenizer(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InferenceError(f"cannot load a tokenizer from {name_or_path}: {exc}") from None


def _load_pretrained(name: str, kind: SourceKind, dev: torch.device, dtype: str) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InferenceError(
            f"cannot load a model config from {name} (a local folder, or a hub id already "
            f"in the local cache): {exc}"
        ) from None
    stored = getattr(config, "dtype", None)
    if isinstance(stored, str):
        stored = getattr(torch, stored, None)
    torch_dtype = pick_dtype(dtype, dev, stored if isinstance(stored, torch.dtype) else None)
    tokenizer = _load_tokenizer(name)
    try:
        # device_map would need accelerate, which is not a dependency: load, then move.
        model = AutoModelForCausalLM.from_pretrained(
            name, dtype=torch_dtype, local_files_only=True
        ).to(dev)
    except (OSError, ValueError) as exc:
        raise InferenceError(f"cannot load a causal LM from {name}: {exc}") from None
    meta: dict[str, Any] = {}
    if kind == "export":
        try:
            meta = json.loads((Path(name) / EXPORT_INFO).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source=kind,
        path=name,
        base_model=str(meta.get("base_model", name)),
        device=dev,
        dtype=torch_dtype,
        step=meta.get("step"),
        meta=meta,
    )


def _load_checkpoint(ckpt: Path, dev: torch.device, dtype: str) -> LoadedModel:
    import torch.distributed.checkpoint as dcp
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
    from transformers.initialization import no_init_weights

    run_config = load_run_config(ckpt)
    base = run_config.model.path
    stored_keys = checkpoint_state_keys(ckpt)
    first = next(iter(stored_keys.values()))
    torch_dtype = pick_dtype(dtype, dev, first.properties.dtype)
    try:
        hf_config = AutoConfig.from_pretrained(base, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InferenceError(
            f"cannot load the base model config from {base} (config.yaml model.path): {exc}"
        ) from None
    tokenizer = _load_tokenizer(base)

    # The checkpoint overwrites every weight, so skip random init (minutes for a large
    # model) and build straight on the target device.
    with no_init_weights(), dev:
        model = AutoModelForCausalLM.from_config(hf_config, dtype=torch_dtype)
    # no_init_weights also skips tying; tie so a tied lm_head follows the embeddings.
    model.tie_weights()
    # from_config derives generation defaults from config.json; the base model's own
    # generation_config.json (several EOS ids, for one) is what an export should carry.
    with contextlib.suppress(OSError, ValueError):
        model.generation_config = GenerationConfig.from_pretrained(base, local_files_only=True)

    state = model.state_dict()
    _check_keys(ckpt, state, stored_keys, model)
    wanted = {k: v for k, v in state.items() if k in stored_keys}
    with warnings.catch_warnings():
        # "torch.distributed is disabled ... assuming the intent is to load in a single
        # process": exactly the intent here.
        warnings.filterwarnings("ignore", message=".*single process.*")
        try:
            dcp.load({"model": wanted}, checkpoint_id=str(ckpt))
        except Exception as exc:
            raise InferenceError(f"{ckpt}: cannot load the model state: {exc}") from None
    meta = read_checkpoint_meta(ckpt)
    step = meta.get("step")
    if step is None and ckpt.name.startswith("step-") and ckpt.name[5:].isdigit():
        step = int(ckpt.name[5:])
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source="checkpoint",
        path=str(ckpt),
        base_model=base,
        device=dev,
        dtype=torch_dtype,
        step=step,
        meta=meta,
        run_config=run_config,
    )


def _check_keys(
    ckpt: Path, state: dict[str, torch.Tensor], stored: dict[str, Any], model: Any
) -> None:
    """Every weight must come from the checkpoint (tied copies excepted), with its shape."""
    # A tied weight shares storage with another key; the checkpoint may hold either one.
    by_storage: dict[int, list[str]] = {}
    for k, v in state.items():
        by_storage.setdefault(v.untyped_storage().data_ptr(), []).append(k)
    missing = []
    for k, v in state.items():
        if k in stored:
            continue
        aliases = by_storage[v.untyped_storage().data_ptr()]
        # Zero-size storages all share data_ptr 0: do not treat them as ties.
        if v.numel() and any(a in stored for a in aliases if a != k):
            continue
        missing.append(k)
    # Non-persistent buffers are not in state_dict, so "state" lists exactly what must load.
    unexpected = sorted(set(stored) - set(state))
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} weights (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unknown weights (e.g. {', '.join(unexpected[:3])})")
    for k, item in stored.items():
        if k in state and tuple(item.size) != tuple(state[k].shape):
            problems.append(
                f"{k} has shape {tuple(item.size)} in the checkpoint but "
                f"{tuple(state[k].shape)} in the base model"
            )
            break
    if problems:
        raise InferenceError(
            f"{ckpt} does not match the base model {type(model).__name__}: " + "; ".join(problems)
        )


# -- CLI helpers -------------------------------------------------------------------


def run_cli(func: Callable[[], dict[str, Any]]) -> int:
    """Run a CLI body: print its result as one JSON line on stdout, or an error line.

    Exit status 0 on success, 2 for bad input (:class:`InferenceError` and other
    ``ValueError``/``FileNotFoundError``), 1 for anything else. Errors are also
    printed as ``{"error": "..."}`` so a caller parsing the last line always gets JSON.
    """
    from transformers.utils import logging as hf_logging

    # Progress bars would interleave with the result line a caller parses.
    hf_logging.disable_progress_bar()
    started = time.monotonic()
    try:
        result = func()
    except (ValueError, FileNotFoundError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        raise
    result.setdefault("seconds", round(time.monotonic() - started, 3))
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0
