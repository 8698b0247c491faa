"""End to end: real ``torchrun --nproc-per-node 2`` (gloo, CPU) on a tiny Llama.

One uninterrupted reference run (module fixture) is inspected by several tests;
the others stop, resume, change the rank count or send SIGTERM and compare with it.
What holds (measured on this setup): a run stopped and resumed on the same
number of ranks reproduces every per-step loss bit for bit (asserted to 1e-6);
resumed on 1 rank with the same global batch (grad_accum doubled), the losses
agree to about 4e-7 (asserted to 1e-5): same samples, different summation order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import torch

from tests.trainer.train_helpers import (
    ROOT,
    child_env,
    demo_doc_texts,
    losses_by_step,
    run_config,
    run_train,
    train_command,
    write_config,
    write_prepared_corpus,
)
from trainer.checkpoint import checkpoint_dir, list_checkpoints, read_meta
from trainer.events import read_events
from trainer.fence import EXIT_SUPERSEDED, write_attempt

pytestmark = pytest.mark.slow

STEPS = 12
TOKENS_PER_STEP = 32 * 2 * 2 * 2  # seq_len * micro_batch * grad_accum * ranks


@pytest.fixture(scope="module")
def corpora(tiny_model_dir, tmp_path_factory):
    """Two prepared corpora (domain + 'replay'), mixed 3:1."""
    root = tmp_path_factory.mktemp("corpora")
    domain = write_prepared_corpus(root / "domain", tiny_model_dir, demo_doc_texts(0, 300))
    replay = write_prepared_corpus(root / "replay", tiny_model_dir, demo_doc_texts(300, 200))
    return [(domain, 3.0), (replay, 1.0)]


@pytest.fixture(scope="module")
def reference(tiny_model_dir, corpora, tmp_path_factory):
    """The uninterrupted 2-rank run: (run_dir, events, config dict)."""
    root = tmp_path_factory.mktemp("reference")
    cfg = run_config(tiny_model_dir, corpora)
    config = write_config(root / "run.yaml", cfg)
    run_dir = root / "run"
    proc = run_train(2, config, run_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir, read_events(run_dir), cfg


def _statuses(events):
    return [e["data"]["state"] for e in events if e["kind"] == "status"]


def test_loss_falls_and_events_follow_the_schema(reference):
    run_dir, events, _ = reference
    losses = losses_by_step(events)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert sum(list(losses.values())[-3:]) / 3 < losses[1] - 0.3
    assert _statuses(events) == ["running", "completed"]
    metric = next(e for e in events if e["kind"] == "metric")
    assert metric["v"] == 1
    # No "mfu" on CPU: there is no peak to compare against.
    assert set(metric["data"]) == {
        "loss", "lr", "grad_norm", "tokens_per_s", "mem_gb", "tokens_seen", "step_time",
    }  # fmt: skip
    last = [e for e in events if e["kind"] == "metric"][-1]["data"]
    assert last["tokens_seen"] == STEPS * TOKENS_PER_STEP
    evals = [e for e in events if e["kind"] == "eval"]
    assert [e["step"] for e in evals] == [4, 8, 12]
    assert evals[-1]["data"]["val_loss"] < evals[0]["data"]["val_loss"]
    assert (run_dir / "config.yaml").is_file()


def test_retention_keeps_the_last_two_plus_the_best(reference):
    run_dir, events, _ = reference
    saved = {e["step"]: e["data"] for e in events if e["kind"] == "checkpoint"}
    assert sorted(saved) == [4, 8, 12]
    best = min(saved, key=lambda s: saved[s]["val_loss"])
    assert [s for s, _ in list_checkpoints(run_dir)] == sorted({8, 12, best})
    meta = read_meta(checkpoint_dir(run_dir, 12))
    assert meta["step"] == 12 and meta["tokens_seen"] == STEPS * TOKENS_PER_STEP
    assert meta["bytes"] > 0 and meta["val_loss"] == saved[12]["val_loss"]


def _start(config, run_dir, log_path):
    # start_new_session: the test can kill the whole group if something hangs.
    return subprocess.Popen(
        train_command(2, config, run_dir), cwd=ROOT, env=child_env(),
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def test_sigterm_saves_a_checkpoint_and_the_resumed_run_gives_the_same_losses(
    reference, tiny_model_dir, tmp_path
):
    _, ref_events, cfg = reference
    # No periodic checkpoints (they do not change the losses): the stop's checkpoint is
    # the only one, wherever the signal lands.
    cfg = json.loads(json.dumps(cfg))
    cfg["checkpoint"]["interval"] = 0
    config = write_config(tmp_path / "run.yaml", cfg)
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    proc = _start(config, run_dir, log)
    try:
        deadline = time.monotonic() + 240
        # Signal torchrun itself, as the worker does (it forwards SIGTERM to every rank),
        # as soon as training has started: the run stops after a step well before the end.
        while not read_events(run_dir):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    events = read_events(run_dir)
    status = [e for e in events if e["kind"] == "status"][-1]
    assert status["data"]["state"] == "preempted", log.read_text()[-3000:]
    assert "signal 15" in status["data"]["message"]
    stopped = status["step"]
    assert 1 <= stopped < STEPS
    assert [s for s, _ in list_checkpoints(run_dir)] == [stopped]
    # torchrun exits non-zero when signalled; the ranks' own code (75) is checked on 1 rank below.
    assert proc.returncode != 0

    # A newer folder whose save never finished must be ignored by --resume latest.
    partial = checkpoint_dir(run_dir, STEPS - 1)
    partial.mkdir()
    (partial / "__0_0.distcp").write_bytes(b"partial")
    second = run_train(2, config, run_dir, "--resume", "latest")
    assert second.returncode == 0, second.stderr[-3000:]
    events = read_events(run_dir)
    assert _statuses(events) == ["running", "preempted", "running", "completed"]
    resumed = [e for e in events if e["kind"] == "status"][2]
    assert resumed["step"] == stopped and f"step-{stopped:06d}" in resumed["data"]["message"]
    ours, ref = losses_by_step(events), losses_by_step(ref_events)
    assert sorted(ours) == sorted(ref)
    for step in ref:
        assert ours[step] == pytest.approx(ref[step], abs=1e-6), step


def test_resuming_on_one_rank_with_the_same_global_batch_matches(reference, tmp_path):
    ref_dir, ref_events, cfg = reference
    one_rank = json.loads(json.dumps(cfg))
    one_rank["data"]["grad_accum_steps"] = 4
    one_rank["parallel"]["nproc_per_node"] = 1
    config = write_config(tmp_path / "run.yaml", one_rank)
    run_dir = tmp_path / "run"
    # --stop-after-steps behaves exactly like a preemption at that step.
    proc = run_train(
        1, config, run_dir, "--resume", str(checkpoint_dir(ref_dir, 8)), "--stop-after-steps", "10"
    )
    assert proc.returncode == 75, proc.stderr[-3000:]
    events = read_events(run_dir)
    assert _statuses(events) == ["running", "preempted"]
    assert [s for s, _ in list_checkpoints(run_dir)] == [10]
    ours, ref = losses_by_step(events), losses_by_step(ref_events)
    assert sorted(ours) == [9, 10]
    for step in ours:
        assert ours[step] == pytest.approx(ref[step], abs=1e-5), step


def _validation_loss(model, cfg, corpora) -> float:
    """The loop's evaluation, redone in one process: same windows, token-weighted."""
    from trainer.sampler import ValidationWindows
    from trainer.shards import PreparedCorpus

    val = ValidationWindows(
        [PreparedCorpus(p).split("val") for p, _ in corpora], seq_len=cfg["data"]["seq_len"]
    )
    total, tokens = 0.0, 0
    ranks = cfg["parallel"]["nproc_per_node"]
    with torch.no_grad():
        for index in range(cfg["eval"]["batches"] * ranks):
            batch = val.batch(index, cfg["data"]["micro_batch_size"])
            logits = model(input_ids=batch[:, :-1]).logits
            total += float(
                torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum"
                )
            )
            tokens += batch[:, 1:].numel()
    return total / tokens


def test_the_checkpoint_loads_per_contract_and_its_export_gives_the_same_logits(
    reference, corpora, tiny_model_dir, tmp_path
):
    import torch.distributed.checkpoint as dcp
    from transformers import AutoModelForCausalLM

    from trainer.export import export_checkpoint

    run_dir, events, cfg = reference
    ckpt = checkpoint_dir(run_dir, 12)
    # The contract: dcp.load of {"model": state_dict} in one process, no process group.
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    state = model.state_dict()
    dcp.load({"model": state}, checkpoint_id=str(ckpt))
    model.load_state_dict(state)
    logged = [e for e in events if e["kind"] == "eval"][-1]["data"]["val_loss"]
    assert _validation_loss(model, cfg, corpora) == pytest.approx(logged, abs=1e-5)

    export_checkpoint(ckpt, tmp_path / "export")
    exported = AutoModelForCausalLM.from_pretrained(str(tmp_path / "export")).eval()
    ids = torch.randint(
        0, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        assert torch.allclose(
            exported(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5
        )
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
        assert not torch.allclose(base(input_ids=ids).logits, model(input_ids=ids).logits)


def test_a_corpus_from_another_tokenizer_fails_the_run_with_a_status(
    tiny_model_dir, corpora, tmp_path
):
    foreign = tmp_path / "foreign"
    shutil.copytree(corpora[0][0], foreign)
    manifest = json.loads((foreign / "manifest.json").read_text())
    manifest["tokenizer"]["fingerprint"] = "0" * 64
    (foreign / "manifest.json").write_text(json.dumps(manifest))
    one_rank = run_config(tiny_model_dir, [(foreign, 1.0)], **{"parallel.nproc_per_node": 1})
    run_dir = tmp_path / "run"
    proc = run_train(1, write_config(tmp_path / "run.yaml", one_rank), run_dir)
    assert proc.returncode == 1
    status = [e for e in read_events(run_dir) if e["kind"] == "status"]
    assert [s["data"]["state"] for s in status] == ["failed"]
    assert "data.corpora.0.path" in status[0]["data"]["message"]
    assert "prepare it again" in status[0]["data"]["message"]


def _metric_steps(run_dir) -> list[int]:
    return [e["step"] for e in read_events(run_dir) if e["kind"] == "metric"]


def test_an_attempt_superseded_by_a_newer_one_stops_without_a_checkpoint_or_events(
    tiny_model_dir, corpora, tmp_path
):
    # Far more steps than the test waits for: only the fence can end this run in time.
    cfg = run_config(
        tiny_model_dir,
        corpora,
        **{"schedule.total_steps": 100_000, "checkpoint.interval": 2, "eval.interval": 0},
    )
    config = write_config(tmp_path / "run.yaml", cfg)
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    run_dir.mkdir()
    write_attempt(run_dir, 1, host="host-a", worker="w@a")
    proc = subprocess.Popen(
        train_command(2, config, run_dir, "--attempt", "1"), cwd=ROOT, env=child_env(),
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not list_checkpoints(run_dir) or max(_metric_steps(run_dir), default=0) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        # The lost-run sweep resumed the run elsewhere: that worker wrote the file.
        write_attempt(run_dir, 2, host="host-b", worker="w@b")
        seen = max(_metric_steps(run_dir))
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = log.read_text()
    # torchrun itself exits 1 for any failing rank; each rank's own code is in its report:
    # the first to exit says 76, and one still tearing down is then SIGTERMed by torchrun.
    assert proc.returncode != 0, out[-3000:]
    exit_code = re.compile(r"exitcode\s*:\s*(-?\d+)")
    assert exit_code.search(out, out.index("Root Cause")).group(1) == str(EXIT_SUPERSEDED)
    assert {int(c) for c in exit_code.findall(out)} <= {EXIT_SUPERSEDED, -signal.SIGTERM}
    assert "superseded: attempt.json names attempt 2, this is attempt 1" in out
    # Bounded by one step: the step whose read came just before the change may finish.
    assert max(_metric_steps(run_dir)) <= seen + 1
    events = read_events(run_dir)
    assert _statuses(events) == ["running"]  # no final status to confuse the follower
    folders = [int(p.name.removeprefix("step-")) for p in (run_dir / "checkpoints").iterdir()]
    assert folders and max(folders) <= seen + 1
    saved = [e["step"] for e in events if e["kind"] == "checkpoint"]
    assert saved and max(saved) <= seen + 1
