"""trainer.export: a checkpoint becomes a Hugging Face folder that transformers loads."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.trainer import train_helpers
from tests.trainer.inference_fixtures import write_checkpoint
from trainer.export import export_checkpoint, main
from trainer.inference import InferenceError, load_model
from trainer.shards import tokenizer_fingerprint

IDS = torch.tensor([[5, 17, 42, 99, 3, 250, 7, 7, 300]])


@pytest.fixture(scope="module")
def checkpoint(tiny_model_dir, tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("run"), tiny_model_dir, step=5)


def _assert_same_logits(checkpoint, export_dir):
    exported = AutoModelForCausalLM.from_pretrained(str(export_dir)).eval()
    original = load_model(checkpoint, device="cpu").model
    with torch.no_grad():
        torch.testing.assert_close(exported(IDS).logits, original(IDS).logits, rtol=1e-6, atol=1e-6)


def test_an_export_loads_with_transformers_and_gives_the_checkpoints_logits(
    checkpoint, tiny_model_dir, tmp_path
):
    out = tmp_path / "export" / "step-000005"

    result = export_checkpoint(checkpoint, out)

    assert result["out"] == str(out)
    assert result["step"] == 5
    assert result["dtype"] == "float32"
    assert "model.safetensors" in result["files"]
    assert result["bytes"] == sum(f.stat().st_size for f in out.iterdir())
    _assert_same_logits(checkpoint, out)
    # The tokenizer travels with the weights and tokenizes like the base model's.
    text = "Return a new dictionary"
    assert (
        AutoTokenizer.from_pretrained(str(out))(text).input_ids
        == AutoTokenizer.from_pretrained(str(tiny_model_dir))(text).input_ids
    )
    assert tokenizer_fingerprint(out) == tokenizer_fingerprint(tiny_model_dir)
    info = json.loads((out / "export.json").read_text())
    assert (info["step"], info["base_model"]) == (5, str(tiny_model_dir))
    # Readable by other users of the run directory (safetensors writes 0600 files).
    assert all(f.stat().st_mode & stat.S_IRGRP for f in out.iterdir())
    # Only the finished folder is left: no partial or old copies beside it.
    assert [p.name for p in out.parent.iterdir()] == ["step-000005"]


def test_an_export_can_be_loaded_again_by_evaluate_and_generate_as_an_export(checkpoint, tmp_path):
    out = tmp_path / "exp"
    export_checkpoint(checkpoint, out, dtype="bf16")

    loaded = load_model(out, device="cpu", dtype="bf16")

    assert (loaded.source, loaded.step, loaded.dtype) == ("export", 5, torch.bfloat16)
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def test_it_refuses_to_overwrite_an_export_unless_asked(checkpoint, tiny_model_dir, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "stale.txt").write_text("old")

    with pytest.raises(InferenceError, match="already exists"):
        export_checkpoint(checkpoint, out)
    assert (out / "stale.txt").exists()

    export_checkpoint(checkpoint, out, overwrite=True)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_a_failed_export_leaves_no_folder_that_looks_complete(checkpoint, tmp_path, monkeypatch):
    import trainer.export

    def disk_full(folder):
        raise OSError("No space left on device")

    # Everything is written to the temporary folder, then the last step fails.
    monkeypatch.setattr(trainer.export, "_apply_umask", disk_full)
    with pytest.raises(OSError, match="No space left"):
        export_checkpoint(checkpoint, tmp_path / "exp")
    assert list(tmp_path.iterdir()) == []

    # Replacing an export: the old one survives a failed overwrite untouched.
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "config.json").write_text("{}")
    with pytest.raises(OSError, match="No space left"):
        export_checkpoint(checkpoint, tmp_path / "exp", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]
    assert [p.name for p in (tmp_path / "exp").iterdir()] == ["config.json"]


def test_the_cli_rejects_a_folder_that_is_not_a_checkpoint_with_a_json_error(tmp_path, capsys):
    half = tmp_path / "run" / "checkpoints" / "step-000010"
    half.mkdir(parents=True)
    (half / "__0_0.distcp").write_bytes(b"partial")

    status = main(["--checkpoint", str(half), "--out", str(tmp_path / "exp")])

    assert status == 2
    out = capsys.readouterr()
    error = json.loads(out.out.strip().splitlines()[-1])["error"]
    assert "no .metadata" in error
    assert "no .metadata" in out.err
    assert not (tmp_path / "exp").exists()


@pytest.mark.slow
def test_a_checkpoint_written_by_torchrun_exports_to_the_same_logits(tiny_model_dir, tmp_path):
    """The issue's acceptance test: real 2-rank FSDP2 training on CPU, then the CLI export."""
    corpus = train_helpers.write_prepared_corpus(
        tmp_path / "corpus", tiny_model_dir, train_helpers.demo_doc_texts(0, 120)
    )
    cfg = train_helpers.run_config(
        tiny_model_dir,
        [(corpus, 1.0)],
        **{
            "schedule.total_steps": 2,
            "schedule.warmup_steps": 1,
            "eval.interval": 0,
            "checkpoint.interval": 0,
        },
    )
    config = train_helpers.write_config(tmp_path / "run.yaml", cfg)
    run_dir = tmp_path / "run"
    train = train_helpers.run_train(2, config, run_dir, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    checkpoint = run_dir / "checkpoints" / "step-000002"
    assert (checkpoint / ".metadata").is_file()

    out = run_dir / "export" / "step-000002"
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.export", "--checkpoint", str(checkpoint), "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=train_helpers.child_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["out"], result["step"]) == (str(out), 2)

    _assert_same_logits(checkpoint, out)
    # Training moved the weights: the export is not just the base model re-saved.
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    exported = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    with torch.no_grad():
        assert not torch.allclose(exported(IDS).logits, base(IDS).logits, atol=1e-4)
