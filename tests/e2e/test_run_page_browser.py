"""The run page in a real browser against the real stack (uvicorn, Celery worker, torchrun).

A run trains while its page is open: the loss chart gains points over the websocket
without a reload. Then "Resume from here" on an earlier checkpoint starts a second
attempt whose points continue the curve from that checkpoint's step.
"""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(420)]

TOTAL_STEPS = 40
INTERVAL = 10
LOSS_X = "() => (document.getElementById('chart-loss').data || [{x: []}])[0].x"
# Records every length the loss chart goes through, from inside the page.
RECORD_LENGTHS = f"""() => {{
  window.__lengths = [];
  setInterval(() => {{
    const n = ({LOSS_X})().length;
    if (window.__lengths[window.__lengths.length - 1] !== n) window.__lengths.push(n);
  }}, 20);
}}"""


def _ready_dataset(owner, corpus):
    """A validated dataset row with its file in place (the upload is another test's job)."""
    from webapp.datasets.models import Dataset

    dataset = Dataset.objects.create(
        owner=owner,
        name="docstrings",
        filename="corpus.jsonl",
        size_bytes=corpus.stat().st_size,
        received_bytes=corpus.stat().st_size,
        sha256="0" * 64,
        state=Dataset.State.READY,
    )
    dataset.storage_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(corpus, dataset.file_path)
    return dataset


def _config(dataset_id: int, model_dir) -> dict:
    from trainer.config import parse_config

    config = {
        "name": "browser",
        "log_interval": 1,
        "model": {"path": str(model_dir)},
        "data": {
            "corpora": [{"path": f"dataset://{dataset_id}"}],
            "seq_len": 32,
            "micro_batch_size": 4,
        },
        "optim": {"lr": 0.001},
        "schedule": {"total_steps": TOTAL_STEPS, "warmup_steps": 5},
        "eval": {"interval": INTERVAL, "batches": 2},
        "checkpoint": {"interval": INTERVAL},
        "parallel": {"nproc_per_node": 1, "device": "cpu"},
    }
    parse_config(config)  # the test's own config must be valid before the worker sees it
    return config


def test_the_chart_grows_live_and_resume_continues_the_curve(
    live_db, make_user, new_page, shots, demo_corpus, tiny_model_dir
):
    from webapp.runs.models import Metric, Run
    from worker.control import queue_run

    carol = make_user("carol")
    dataset = _ready_dataset(carol, demo_corpus)
    run = Run.objects.create(
        owner=carol, name="live-chart", config=_config(dataset.pk, tiny_model_dir)
    )

    page = new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the Resume confirmation
    log_in(page, "carol", "carol-pass-123")
    page.goto(f"/runs/{run.pk}/")
    page.wait_for_function("window.runPage && window.runPage.plotted")
    page.evaluate("window.__samePage = true")  # a reload would drop this
    before = len(page.evaluate(LOSS_X))
    assert before == 0

    page.evaluate(RECORD_LENGTHS)
    queue_run(run)  # the real worker prepares, launches torchrun and follows it
    state = page.locator("#run-state")
    expect(state).to_have_text("completed", timeout=300_000)
    assert page.evaluate("window.__samePage") is True
    # The chart grew while the run trained (several websocket batches), not in one go at
    # the end; recorded in the page, so a fast machine cannot outrun the test's polling.
    grew = [n for n in page.evaluate("window.__lengths") if n > 0]
    assert len(grew) >= 2 and grew == sorted(grew), grew
    live_steps = page.evaluate(LOSS_X)
    assert live_steps == list(range(1, TOTAL_STEPS + 1))
    expect(page.locator("#log")).not_to_be_empty()
    rows = page.locator("#checkpoint-rows tr[data-step]")
    expect(rows.last).to_have_attribute("data-step", str(TOTAL_STEPS), timeout=30_000)

    # Resume from the earliest checkpoint still kept: a second attempt from its step.
    resume_row = rows.first
    resume_step = int(resume_row.get_attribute("data-step"))
    assert resume_step < TOTAL_STEPS
    resume_row.get_by_role("button", name="Resume from here").click()
    expect(page.locator("#fact-attempt")).to_have_text("2", timeout=60_000)
    expect(state).to_have_text("completed", timeout=240_000)

    resumed = list(
        Metric.objects.filter(run=run, kind="metric", attempt=2).values_list("step", flat=True)
    )
    assert resumed and min(resumed) == resume_step + 1 and max(resumed) == TOTAL_STEPS
    page.wait_for_function(f"({LOSS_X})().slice(-1)[0] === {TOTAL_STEPS}", timeout=30_000)
    steps = page.evaluate(LOSS_X)
    assert steps == list(range(1, TOTAL_STEPS + 1))  # one curve: no gap, no step twice
    shots(page, "run-page")

    # Compare overlays this run's loss curve (from the same history endpoint).
    page.goto(f"/runs/compare/?ids={run.pk}")
    page.wait_for_function(
        "() => { const d = document.getElementById('chart-compare').data;"
        f" return d && d.length >= 1 && d[0].x.length === {TOTAL_STEPS}; }}"
    )
