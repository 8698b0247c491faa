"""Export a training checkpoint as a consolidated Hugging Face model.

``python -m trainer.export --checkpoint <run-dir>/checkpoints/step-NNNNNN --out DIR``
writes safetensors weights, config, generation config and the base model's
tokenizer, plus ``export.json`` (which checkpoint, step, base model, dtype), so
``AutoModelForCausalLM.from_pretrained(DIR)`` loads it. The export is written
to a hidden temporary folder beside ``DIR`` and renamed into place only when
complete, so a half-written export never looks like a model.

Prints one JSON result line: ``{"out", "checkpoint", "step", "base_model",
"dtype", "bytes", "files", "seconds"}`` (or ``{"error": ...}``, exit 2).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from trainer.inference import (
    DTYPES,
    EXPORT_INFO,
    InferenceError,
    find_source,
    load_model,
    run_cli,
)
from trainer.shards import TOKENIZER_FILES

__all__ = ["export_checkpoint", "main"]

EXPORT_VERSION = 1
# Tokenizer files that do not change tokenization (so are not fingerprinted) but belong
# with it.
EXTRA_TOKENIZER_FILES = ("chat_template.jinja", "chat_template.json")


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    dtype: str = "store",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the checkpoint's model as a Hugging Face folder at ``out``; return a summary.

    ``dtype`` is ``store`` (as saved in the checkpoint) or one of fp32/bf16/fp16.
    An existing ``out`` is an error unless ``overwrite``; it is then replaced only
    after the new export is complete.
    """
    if find_source(checkpoint) != "checkpoint":
        raise InferenceError(f"checkpoint: {checkpoint} is not a DCP checkpoint (no .metadata)")
    if dtype != "store" and dtype not in DTYPES:
        raise InferenceError(f"dtype: expected store or one of {', '.join(DTYPES)}, got {dtype!r}")
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise InferenceError(f"out: {out} exists and is not a directory")
    if out.exists() and not overwrite:
        raise InferenceError(f"out: {out} already exists (pass --overwrite to replace it)")

    loaded = load_model(checkpoint, device="cpu", dtype=dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        _write_export(loaded, Path(checkpoint), tmp)
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    files = sorted(p.name for p in out.iterdir() if p.is_file())
    return {
        "out": str(out),
        "checkpoint": str(Path(checkpoint).absolute()),
        "step": loaded.step,
        "base_model": loaded.base_model,
        "dtype": str(loaded.dtype).removeprefix("torch."),
        "bytes": sum((out / f).stat().st_size for f in files),
        "files": files,
    }


def _write_export(loaded: Any, checkpoint: Path, tmp: Path) -> None:
    tmp.mkdir()
    # The generation config is the base model's (see trainer.inference), saved alongside.
    loaded.model.save_pretrained(str(tmp))
    _write_tokenizer(loaded, tmp)
    if not any(tmp.glob("*.safetensors")):
        raise RuntimeError(f"save_pretrained wrote no safetensors files in {tmp}")
    _apply_umask(tmp)
    meta = loaded.meta
    info = {
        "version": EXPORT_VERSION,
        "checkpoint": str(checkpoint.absolute()),
        "step": loaded.step,
        "tokens_seen": meta.get("tokens_seen"),
        "loss": meta.get("loss"),
        "val_loss": meta.get("val_loss"),
        "base_model": loaded.base_model,
        "dtype": str(loaded.dtype).removeprefix("torch."),
        "time": time.time(),
    }
    (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _write_tokenizer(loaded: Any, tmp: Path) -> None:
    """Copy the base model's tokenizer files byte for byte, else re-save the tokenizer.

    A copy keeps ``tokenizer_fingerprint`` equal to the base model's, so a corpus
    prepared for the base model is recognised as matching the export.
    """
    source = _local_model_dir(loaded.base_model)
    copied = 0
    if source is not None:
        for name in (*TOKENIZER_FILES, *EXTRA_TOKENIZER_FILES):
            if (source / name).is_file():
                shutil.copyfile(source / name, tmp / name)
                copied += 1
    if not copied:
        loaded.tokenizer.save_pretrained(str(tmp))


def _local_model_dir(name_or_path: str) -> Path | None:
    """A local folder, or a hub id's snapshot already in the cache (never downloads)."""
    if Path(name_or_path).is_dir():
        return Path(name_or_path)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, local_files_only=True))
    except Exception:  # not cached, or not a hub id at all
        return None


def _apply_umask(folder: Path) -> None:
    """Give every file the usual permissions: safetensors writes its temp file as 0600,
    which the web server or another user sharing the run directory could not read."""
    umask = _current_umask()
    for f in folder.iterdir():
        if f.is_file():
            f.chmod(0o666 & ~umask)
    folder.chmod(0o777 & ~umask)


def _current_umask() -> int:
    # os.umask can only be read by setting it, which races with other threads.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an old ``out`` is moved aside first and removed after."""
    if not out.exists():
        tmp.rename(out)
        return
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", required=True, help="<run-dir>/checkpoints/step-NNNNNN folder."
    )
    parser.add_argument("--out", required=True, help="Output folder (created; must not exist).")
    parser.add_argument(
        "--dtype",
        default="store",
        choices=["store", *DTYPES],
        help="Weight dtype: store = as saved in the checkpoint.",
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing --out.")
    args = parser.parse_args(argv)
    return run_cli(
        lambda: export_checkpoint(
            args.checkpoint, args.out, dtype=args.dtype, overwrite=args.overwrite
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
