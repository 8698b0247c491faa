"""python -m trainer.prepare: JSON progress lines on stdout, a summary on stderr, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.trainer.test_prepare import docs, jsonl, tokenizer_dir, write_lines  # noqa: F401
from trainer.prepare import main
from trainer.shards import PreparedCorpus

ROOT = Path(__file__).resolve().parents[2]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_cli_prints_progress_lines_then_a_result(tmp_path, tokenizer_dir):  # noqa: F811
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(50)) + ["bad line"])
    argv = ["--input", str(src), "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / "o")]
    # A real subprocess, as the worker runs it.
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.prepare", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    out = json_lines(proc.stdout)
    progress = [o for o in out if o["kind"] == "progress"]
    assert {p["stage"] for p in progress} == {"hash", "prepare"}
    last = [p for p in progress if p["stage"] == "prepare"][-1]
    assert last["bytes_done"] == last["bytes_total"] == src.stat().st_size
    result = out[-1]
    assert result["kind"] == "result" and result["status"] == "ok"
    assert result["counts"]["kept"] == 50 and result["counts"]["bad"] == {"invalid_json": 1}
    corpus = PreparedCorpus(result["path"])
    assert result["tokens"]["train"] == len(corpus.split("train"))
    assert "kept 50" in proc.stderr and "invalid_json: 1 (first: a.jsonl line 51)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_cached_run_says_so(tmp_path, tokenizer_dir, capsys):  # noqa: F811
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(10)))
    argv = ["--input", str(src), "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / "o")]
    assert main([*argv, "--workers", "1"]) == 0
    first = json_lines(capsys.readouterr().out)[-1]
    assert main([*argv, "--workers", "1"]) == 0
    second = json_lines(capsys.readouterr().out)
    assert second[-1]["status"] == "cached" and second[-1]["path"] == first["path"]
    assert any(o.get("stage") == "cached" for o in second)


def test_cli_exit_code_3_for_a_rejected_corpus_with_the_report(tmp_path, tokenizer_dir, capsys):  # noqa: F811
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(3)) + ["{", "[1]"])
    argv = ["--input", str(src), "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / "o")]
    assert main([*argv, "--workers", "1", "--max-bad-fraction", "0.1"]) == 3
    captured = capsys.readouterr()
    result = json_lines(captured.out)[-1]
    assert result["status"] == "rejected"
    assert result["report"]["bad"] == {"invalid_json": 1, "not_object": 1}
    assert result["report"]["bad_examples"]["not_object"][0]["line"] == 5
    assert "corpus rejected" in captured.err


def test_cli_exit_code_4_for_an_empty_corpus(tmp_path, tokenizer_dir, capsys):  # noqa: F811
    src = write_lines(tmp_path / "a.jsonl", [""])
    argv = ["--input", str(src), "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / "o")]
    assert main([*argv, "--workers", "1"]) == 4
    assert json_lines(capsys.readouterr().out)[-1]["status"] == "empty"


def test_cli_exit_code_2_for_usage_errors(tmp_path, tokenizer_dir, capsys):  # noqa: F811
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(3)))
    assert main(["--input", str(tmp_path / "missing.jsonl"), "--validate-only"]) == 2
    assert "missing.jsonl" in capsys.readouterr().err
    assert main(["--input", str(src), "--validate-only", "--val-fraction", "2"]) == 2
    assert "val_fraction" in capsys.readouterr().err
    assert main(["--input", str(src)]) == 2  # no tokenizer or out
    assert "--tokenizer" in capsys.readouterr().err
    bad_tok = ["--tokenizer", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main(["--input", str(src), *bad_tok]) == 2
    assert "tokenizer" in capsys.readouterr().err


def test_cli_validate_only_needs_no_tokenizer(tmp_path, capsys):
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(4)) + ['{"text": 1}'])
    assert main(["--input", str(src), "--validate-only", "--max-bad-fraction", "0.5"]) == 0
    result = json_lines(capsys.readouterr().out)[-1]
    assert result["status"] == "ok"
    assert result["report"]["documents"] == 4
    assert result["report"]["bad_examples"]["not_string"][0]["line"] == 5
    assert main(["--input", str(src), "--validate-only", "--max-bad-fraction", "0.1"]) == 3


def test_cli_exit_code_4_when_every_document_lands_in_validation(tmp_path, tokenizer_dir, capsys):  # noqa: F811
    from tests.trainer.test_prepare import docs_in_val

    src = write_lines(tmp_path / "a.jsonl", jsonl(docs_in_val(2, 0.5)))
    argv = ["--input", str(src), "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / "o")]
    assert main([*argv, "--workers", "1", "--val-fraction", "0.5"]) == 4
    captured = capsys.readouterr()
    result = json_lines(captured.out)[-1]
    assert result["status"] == "empty"
    assert result["counts"]["train_documents"] == 0 and result["counts"]["val_documents"] == 2
    assert result["tokens"]["train"] == 0 and result["tokens"]["val"] > 0
    assert "empty train split for a.jsonl" in captured.err
    assert "--val-fraction" in captured.err
    assert main([*argv, "--workers", "1", "--val-fraction", "0"]) == 0
