"""The run form in a real browser: the schema's HTML bounds accept the defaults, a run
launches and the browser lands on its page; a bad value comes back next to its field."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.webapp.web_factories import make_dataset, make_model
from webapp.runs.models import Run


@pytest.mark.slow
@pytest.mark.e2e
def test_a_run_launches_from_the_browser_form(transactional_db, browser_context, alice):
    model, dataset = make_model(alice), make_dataset(alice, "domain")
    page = browser_context.new_page()
    page.goto("/runs/new/")
    page.select_option("#id_base_model", str(model.pk))
    page.check(f"#id_datasets_{dataset.pk}")
    page.fill("#id_name", "browser-run")
    # Out of the schema's bounds: the server answers with the error next to the field.
    page.fill("#id_optim__lr", "3")
    page.evaluate("document.getElementById('run-form').noValidate = true")
    page.click("#run-form button[type=submit]")
    expect(page.locator("#error-optim__lr")).to_contain_text("less than or equal to 1")
    page.fill("#id_optim__lr", "0.0001")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/runs/\d+/$"), timeout=30_000)
    run = Run.objects.get()
    assert page.url.endswith(f"/runs/{run.pk}/")
    assert run.name == "browser-run" and run.config["optim"]["lr"] == 0.0001
    assert run.config["data"]["corpora"][0]["path"] == f"dataset://{dataset.pk}"
