"""What a user sees when the input is wrong, in a real browser against the real stack."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    log_in,
    upload_corpus,
    wait_for_dataset,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(300)]


def malformed_corpus(path):
    """40 good documents with four kinds of bad line at known line numbers."""
    lines = [
        json.dumps({"text": f"document number {i} about the standard library"}) for i in range(40)
    ]
    lines[2] = '{"text": "an unterminated string'  # line 3: not JSON
    lines[6] = json.dumps({"body": "no text field here"})  # line 7: missing field
    lines[11] = json.dumps(["a", "list"])  # line 12: not an object
    lines[19] = json.dumps({"text": 42})  # line 20: text is not a string
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_malformed_upload_lists_its_bad_lines_with_their_line_numbers(
    live_db, new_page, shots, tmp_path
):
    page = new_page()
    log_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    progress = upload_corpus(page, malformed_corpus(tmp_path / "malformed.jsonl"), "malformed")
    assert progress and progress[-1] == 1.0
    # 4 bad lines in 40 is over the 5% limit: the dataset is refused, and says why.
    assert wait_for_dataset(page) == "rejected"
    expect(page.locator("#dataset-error")).to_contain_text("4 bad lines")
    shots(page, "malformed-dataset")
    rows = page.locator("section", has=page.get_by_role("heading", name="Bad lines")).locator(
        "tbody tr"
    )
    excerpts = {
        int(row.locator("td").first.inner_text()): row.locator("code").inner_text()
        for row in rows.all()
    }
    assert set(excerpts) == {3, 7, 12, 20}
    assert "unterminated" in excerpts[3] and "body" in excerpts[7] and "list" in excerpts[12]


# Opens a websocket from the page and reports what happened within a few seconds.
_OPEN_SOCKET = """
(path) => new Promise((resolve) => {
  const out = { opened: false, messages: [], code: null };
  const ws = new WebSocket(`ws://${location.host}${path}`);
  ws.onopen = () => { out.opened = true; };
  ws.onmessage = (event) => { out.messages.push(JSON.parse(event.data)); ws.close(1000); };
  ws.onclose = (event) => { out.code = event.code; resolve(out); };
  setTimeout(() => { ws.close(); resolve(out); }, 8000);
})
"""


def test_a_second_user_cannot_open_the_first_users_run_page_or_websocket(
    make_user, new_page, shots
):
    from webapp.runs.models import Run

    alice, _bob = make_user("alice"), make_user("bob")
    run = Run.objects.create(owner=alice, name="alice-private-run", config={}, state="completed")
    socket_path = f"/ws/runs/{run.pk}/"

    owner = new_page()
    log_in(owner, "alice", "alice-pass-123")
    owner.goto(f"/runs/{run.pk}/")
    expect(owner.locator("h1")).to_contain_text("alice-private-run")
    seen = owner.evaluate(_OPEN_SOCKET, socket_path)
    assert seen["opened"] and seen["messages"][0]["run"]["id"] == run.pk

    outsider = new_page()
    log_in(outsider, "bob", "bob-pass-123")
    response = outsider.goto(f"/runs/{run.pk}/")
    assert response.status == 404
    expect(outsider.locator("body")).not_to_contain_text("alice-private-run")
    shots(outsider, "other-users-run")
    seen = outsider.evaluate(_OPEN_SOCKET, socket_path)
    # Accepted, then closed with 4403 before anything is sent: the page can tell a
    # refusal from a dropped connection (which would be a bare 1006) and stops retrying.
    assert seen["code"] == 4403 and not seen["messages"]
    # The run list does not show it either.
    outsider.goto("/")
    expect(outsider.locator("main")).not_to_contain_text("alice-private-run")


def test_a_bad_learning_rate_is_shown_at_its_field_and_launches_nothing(
    live_db, new_page, shots, django_user_model
):
    from webapp.basemodels.models import BaseModel
    from webapp.datasets.models import Dataset
    from webapp.runs.models import Run

    # A model and a ready dataset to choose, so the learning rate is the only thing wrong
    # (neither is opened: the form is refused before anything starts).
    admin = django_user_model.objects.get(username=ADMIN_USERNAME)
    BaseModel.objects.create(owner=admin, name="some-model", source="/nowhere", path="/nowhere")
    Dataset.objects.create(
        owner=admin,
        name="some-corpus",
        filename="corpus.jsonl",
        size_bytes=100,
        received_bytes=100,
        sha256="0" * 64,
        state=Dataset.State.READY,
        stats={"documents": 2},
    )
    page = new_page()
    log_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    page.goto("/runs/new/")
    page.fill("#id_name", "bad-lr")
    page.select_option("#id_base_model", label="some-model")
    page.get_by_label("some-corpus").check()
    # The browser cannot check "greater than 0" (the input has no min): the server must.
    page.fill("#id_optim__lr", "-0.001")
    page.get_by_role("button", name="Launch").click()
    page.wait_for_load_state()
    error = page.locator("#field-optim__lr .errorlist")
    expect(error).to_be_visible()
    expect(error).to_contain_text(re.compile(r"greater than 0", re.I))
    # What the user typed stays in the field, so they can correct it.
    expect(page.locator("#id_optim__lr")).to_have_value("-0.001")
    error.scroll_into_view_if_needed()
    shots(page, "bad-learning-rate")
    assert not Run.objects.exists()
