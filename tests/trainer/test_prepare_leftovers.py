"""trainer.prepare cleans up after prepares that died, and never after live ones.

Real processes: a prepare killed with SIGKILL mid-pass, and one paused mid-pass (its
progress callback waits for a file) while other prepares run into the same root.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.trainer.test_prepare import docs, jsonl, tokenizer_dir, write_lines  # noqa: F401
from trainer.prepare import prepare_corpus
from trainer.shards import PreparedCorpus

ROOT = Path(__file__).resolve().parents[2]

# argv: input, tokenizer, out root, mode ("kill" or "pause"), ready file, go file.
SCRIPT = """
import os, pathlib, signal, sys, time
from trainer.prepare import prepare_corpus

src, tok, root, mode, ready, go = sys.argv[1:]

def progress(stage, done, total):
    if stage != "prepare":
        return
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    pathlib.Path(ready).touch()
    deadline = time.monotonic() + 120
    while not pathlib.Path(go).exists():
        if time.monotonic() > deadline:
            sys.exit("never told to go on")
        time.sleep(0.05)

print(prepare_corpus([src], tok, root, workers=1, progress=progress))
"""


def start(src: Path, tok: Path, root: Path, mode: str, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(src), str(tok), str(root), mode]
        + [str(tmp_path / f"{src.stem}.ready"), str(tmp_path / f"{src.stem}.go")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def dot_entries(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.name.startswith(".")}


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def test_a_prepare_killed_mid_pass_is_cleaned_up_by_the_next_one(tmp_path, tokenizer_dir):  # noqa: F811
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(30)))
    root = tmp_path / "out"
    proc = start(src, tokenizer_dir, root, "kill", tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -9, err
    left = dot_entries(root)
    assert any(name.startswith(".tmp-") for name in left), left
    out = prepare_corpus([src], tokenizer_dir, root, workers=1)
    assert PreparedCorpus(out).manifest["counts"]["kept"] == 30
    assert dot_entries(root) == set()


def test_only_leftovers_of_dead_prepares_go_and_a_live_one_is_waited_for(
    tmp_path,
    tokenizer_dir,  # noqa: F811
):
    root = tmp_path / "out"
    dead_src = write_lines(tmp_path / "dead.jsonl", jsonl(docs(20)))
    live_src = write_lines(tmp_path / "live.jsonl", jsonl(docs(20, start=100)))
    other_src = write_lines(tmp_path / "other.jsonl", jsonl(docs(20, start=200)))

    dead = start(dead_src, tokenizer_dir, root, "kill", tmp_path)
    dead.communicate(timeout=120)
    assert dead.returncode == -9
    dead_leftovers = dot_entries(root)
    assert any(name.startswith(".tmp-") for name in dead_leftovers)

    live = start(live_src, tokenizer_dir, root, "pause", tmp_path)
    try:
        wait_for(tmp_path / "live.ready", live)
        live_entries = dot_entries(root) - dead_leftovers
        assert any(name.startswith(".tmp-") for name in live_entries), live_entries

        # Another dataset into the same root: the dead prepare's folder goes, the live
        # one's stays, and this prepare does not wait for the live one.
        other = prepare_corpus([other_src], tokenizer_dir, root, workers=1)
        assert PreparedCorpus(other).manifest["counts"]["kept"] == 20
        assert dot_entries(root) == live_entries

        # The live prepare's own corpus: this one waits for it, then reuses its result.
        stages: list[str] = []
        result: list[Path] = []
        waiter = threading.Thread(
            target=lambda: result.append(
                prepare_corpus(
                    [live_src],
                    tokenizer_dir,
                    root,
                    workers=1,
                    progress=lambda stage, done, total: stages.append(stage),
                )
            )
        )
        waiter.start()
        deadline = time.monotonic() + 60
        while "wait" not in stages:
            assert waiter.is_alive() and time.monotonic() < deadline, stages
            time.sleep(0.05)
        assert dot_entries(root) == live_entries
        (tmp_path / "live.go").touch()
        out, err = live.communicate(timeout=120)
        assert live.returncode == 0, err
        waiter.join(timeout=60)
        assert not waiter.is_alive()
    finally:
        (tmp_path / "live.go").touch()
        if live.poll() is None:
            live.kill()
            live.communicate()
    assert result == [Path(out.strip())]
    assert "cached" in stages and "prepare" not in stages
    assert PreparedCorpus(result[0]).manifest["counts"]["kept"] == 20
    assert dot_entries(root) == set()
