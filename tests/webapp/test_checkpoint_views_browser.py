"""The checkpoint table in a real browser: a failed export shows why, next to its state."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.webapp.runpage_helpers import make_checkpoint, make_run
from webapp.runs.models import Checkpoint, Run


@pytest.mark.slow
@pytest.mark.e2e
def test_a_failed_export_shows_its_reason_without_server_paths(
    transactional_db, browser_context, alice
):
    run = make_run(alice, state=Run.State.COMPLETED)
    ckpt = make_checkpoint(run, 200)
    Checkpoint.objects.filter(pk=ckpt.pk).update(
        export_state="failed",
        export_error=f"trainer.export: {run.run_dir / ckpt.path} is not a complete checkpoint",
    )
    page = browser_context.new_page()
    page.goto(f"/runs/{run.pk}/")
    row = page.locator(f"#checkpoint-rows tr[data-id='{ckpt.pk}']")
    expect(row.locator(".state-failed")).to_have_text("failed")
    expect(row.locator(".export-error")).to_have_text(
        "trainer.export: checkpoints/step-000200 is not a complete checkpoint"
    )
    assert str(run.run_dir) not in page.content()  # no server path anywhere on the page
