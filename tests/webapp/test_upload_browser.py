"""The upload page in a real browser (Debian chromium): chunks, progress, a closed tab that
resumes from the last stored chunk, the browser's sha256 accepted, the state updating itself."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.webapp.browser import logged_in_browser
from webapp.datasets.models import Dataset
from worker.datasets import validate_dataset

CHUNK = 16 * 1024


@pytest.fixture
def browser_context(live_server, alice, monkeypatch, settings):
    settings.UPLOAD_CHUNK_BYTES = CHUNK
    yield from logged_in_browser(live_server, alice, monkeypatch, settings)


@pytest.mark.slow
@pytest.mark.e2e
def test_a_closed_tab_resumes_the_upload_and_the_page_follows_validation(
    transactional_db, browser_context, demo_corpus
):
    size = demo_corpus.stat().st_size
    assert size > 6 * CHUNK
    page = browser_context.new_page()
    answered = []

    def drop_after_three(route):
        # Three chunks get through, then the connection drops (the page retries), and the
        # tab is closed.
        if len(answered) < 3:
            answered.append(route.request.url)
            route.continue_()
        else:
            route.abort("connectionreset")

    page.route("**/chunk/**", drop_after_three)
    page.goto("/datasets/")
    page.set_input_files("#upload-form input[type=file]", str(demo_corpus))
    page.fill("#upload-form [name=name]", "docstrings")
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#upload-info")).to_contain_text("of", timeout=15_000)
    dataset = Dataset.objects.get(name="docstrings")
    for _ in range(100):
        dataset.refresh_from_db()
        if dataset.received_bytes == 3 * CHUNK:
            break
        page.wait_for_timeout(100)
    assert dataset.received_bytes == 3 * CHUNK
    expect(page.locator("#upload-info")).to_contain_text("retrying")
    page.close()

    page = browser_context.new_page()
    offsets = []
    page.on(
        "request",
        lambda r: "/chunk/" in r.url and offsets.append(int(r.url.split("offset=")[1])),
    )
    page.goto("/datasets/")
    page.set_input_files("#upload-form input[type=file]", str(demo_corpus))
    page.fill("#upload-form [name=name]", "docstrings")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(f"**/datasets/{dataset.pk}/", timeout=30_000)
    assert offsets[0] == 3 * CHUNK  # resumed, not restarted
    assert offsets == sorted(offsets) and len(offsets) == -(-(size - 3 * CHUNK) // CHUNK)
    expect(page.locator("#dataset-state")).to_have_text("validating")

    assert validate_dataset(dataset.pk) == "ready"  # the browser's sha256 matched the file
    expect(page.locator("#dataset-state")).to_have_text("ready", timeout=15_000)
    expect(page.locator("#stat-documents")).to_have_text("500")
    assert Dataset.objects.count() == 1


@pytest.mark.slow
@pytest.mark.e2e
def test_the_page_shows_why_an_upload_is_refused(transactional_db, browser_context, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    page = browser_context.new_page()
    page.goto("/datasets/")
    page.set_input_files("#upload-form input[type=file]", str(bad))
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#upload-error")).to_contain_text("extension that is not allowed")
