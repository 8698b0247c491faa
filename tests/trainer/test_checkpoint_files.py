"""Checkpoint discovery and retention on the file system (no training needed)."""

from __future__ import annotations

import json

import pytest

from trainer.checkpoint import (
    apply_retention,
    checkpoint_dir,
    latest_checkpoint,
    list_checkpoints,
    resolve_resume,
)


def _fake(run_dir, step, val_loss=None, committed=True):
    path = checkpoint_dir(run_dir, step)
    path.mkdir(parents=True)
    (path / "__0_0.distcp").write_bytes(b"x")
    if committed:
        (path / ".metadata").write_bytes(b"m")
        (path / "meta.json").write_text(json.dumps({"step": step, "val_loss": val_loss}))
    return path


def test_a_folder_without_metadata_is_not_a_checkpoint(tmp_path):
    _fake(tmp_path, 10)
    _fake(tmp_path, 20, committed=False)  # a save cut short
    assert [s for s, _ in list_checkpoints(tmp_path)] == [10]
    assert latest_checkpoint(tmp_path) == checkpoint_dir(tmp_path, 10)
    assert resolve_resume(tmp_path, "latest") == checkpoint_dir(tmp_path, 10)


def test_resuming_from_an_incomplete_folder_is_refused(tmp_path):
    _fake(tmp_path, 20, committed=False)
    with pytest.raises(FileNotFoundError, match=".metadata"):
        resolve_resume(tmp_path, "checkpoints/step-000020")


def test_latest_with_no_checkpoint_starts_fresh(tmp_path):
    assert resolve_resume(tmp_path, "latest") is None
    assert resolve_resume(tmp_path, None) is None


def test_a_relative_resume_path_is_taken_from_the_run_dir(tmp_path):
    _fake(tmp_path, 4)
    assert resolve_resume(tmp_path, "checkpoints/step-000004") == checkpoint_dir(tmp_path, 4)


def test_retention_keeps_the_last_k_plus_the_best(tmp_path):
    losses = {2: 3.0, 4: 1.5, 6: 2.0, 8: 2.5, 10: None}
    for step, val in losses.items():
        _fake(tmp_path, step, val)
    partial = _fake(tmp_path, 12, committed=False)
    deleted = apply_retention(tmp_path, keep=2, keep_best=True)
    assert sorted(p.name for p in deleted) == ["step-000002", "step-000006"]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [4, 8, 10]
    assert partial.exists()  # never touched: it may still be being written


def test_retention_without_best_keeps_only_the_last_k(tmp_path):
    for step in (1, 2, 3, 4):
        _fake(tmp_path, step, 1.0 / step)
    apply_retention(tmp_path, keep=3, keep_best=False)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3, 4]
