"""The compare page in a real browser: the metric picker, axis controls and config diff."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.webapp.runpage_helpers import add_metrics, make_run
from webapp.runs.models import Metric, Run

CHART = "document.getElementById('chart-compare')"


@pytest.mark.slow
@pytest.mark.e2e
def test_compare_switches_metric_and_lists_the_differing_config(
    transactional_db, browser_context, alice
):
    config = {"optim": {"lr": 3e-4}, "data": {"seq_len": 1024}}
    trained = make_run(alice, name="trained", state=Run.State.COMPLETED)
    fresh = make_run(alice, name="fresh", state=Run.State.QUEUED)
    Run.objects.filter(pk=trained.pk).update(config=config)
    Run.objects.filter(pk=fresh.pk).update(config={**config, "optim": {"lr": 1e-4}})
    add_metrics(trained, range(1, 31))
    add_metrics(trained, [10, 20, 30], kind=Metric.Kind.EVAL)
    points = Metric.objects.filter(run=trained, kind="metric").order_by("step")

    page = browser_context.new_page()
    page.goto(f"/runs/compare/?ids={trained.pk},{fresh.pk}")
    # Loss: the trained run's train and val traces; the fresh run has no points, no trace.
    page.wait_for_function(f"() => {CHART}.data && {CHART}.data.length === 2")
    names = page.evaluate(f"() => {CHART}.data.map((t) => t.name)")
    assert names == [f"trained #{trained.pk}", f"trained #{trained.pk} val"]
    # No run has MFU or tokens/s (CPU-like rows): those picks are disabled.
    assert page.locator("#metric option[value=mfu]").is_disabled()
    assert page.locator("#metric option[value=tokens_per_s]").is_disabled()
    assert page.locator("#metric option[value=lr]").is_enabled()

    page.select_option("#metric", "lr")
    page.wait_for_function(f"() => {CHART}.layout.title.text === 'Learning rate'")
    trace = page.evaluate(f"() => {CHART}.data.map((t) => ({{x: t.x, y: t.y}}))")
    assert trace == [{"x": [p.step for p in points], "y": pytest.approx([p.lr for p in points])}]

    page.select_option("#x-axis", "tokens_seen")
    page.check("#log-scale")
    page.wait_for_function(f"() => {CHART}.layout.yaxis.type === 'log'")
    assert page.evaluate(f"() => {CHART}.data[0].x") == [p.tokens_seen for p in points]
    assert page.evaluate(f"() => {CHART}.layout.title.text") == "Learning rate"

    # The config table: only the differing lr, the equal seq_len behind "All config keys".
    diff = page.locator("#config-diff-table")
    expect(diff.locator("tr[data-key='optim.lr'] td")).to_have_text(
        ["optim.lr", "0.0003", "0.0001"]
    )
    expect(diff.locator("tr[data-key='data.seq_len']")).to_have_count(0)
    expect(page.locator("#config-all-table tr[data-key='data.seq_len']")).to_be_hidden()
    page.locator("#config-all summary").click()
    expect(page.locator("#config-all-table tr[data-key='data.seq_len']")).to_be_visible()
