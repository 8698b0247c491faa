"""The run page: detail, stop, log tail and compare."""

from __future__ import annotations

import json

import pytest

from tests.webapp.runpage_helpers import add_metrics, make_checkpoint, make_run
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db


def _page_data(response) -> dict:
    body = response.content.decode()
    start = body.index('<script id="run-data" type="application/json">') + len(
        '<script id="run-data" type="application/json">'
    )
    return json.loads(body[start : body.index("</script>", start)])


def test_owner_sees_the_run_page_with_local_plotly_and_its_checkpoints(alice_client, alice):
    run = make_run(alice, name="domain-cpt", step=120, host="gpu-7", attempt=2)
    make_checkpoint(run, 100)
    response = alice_client.get(f"/runs/{run.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "/static/vendor/plotly/plotly.min.js" in body
    assert "cdn" not in body.lower()
    assert "domain-cpt" in body and "gpu-7" in body
    data = _page_data(response)
    assert data["ws_path"] == f"/ws/runs/{run.pk}/"
    assert data["run"]["attempt"] == 2
    assert [c["step"] for c in data["checkpoints"]] == [100]


def test_it_rejects_other_users_run_but_staff_may_look(client, alice, bob, staff):
    run = make_run(alice)
    client.force_login(bob)
    assert client.get(f"/runs/{run.pk}/").status_code == 404
    assert client.post(f"/runs/{run.pk}/stop/").status_code == 404
    client.force_login(staff)
    assert client.get(f"/runs/{run.pk}/").status_code == 200


def test_stop_asks_the_worker_to_stop_an_active_run(alice_client, alice):
    run = make_run(alice, state=Run.State.RUNNING)
    response = alice_client.post(f"/runs/{run.pk}/stop/", follow=True)
    run.refresh_from_db()
    assert run.stop_requested
    assert "Stop requested" in response.content.decode()


def test_stop_refuses_a_finished_run(alice_client, alice):
    run = make_run(alice, state=Run.State.COMPLETED)
    response = alice_client.post(f"/runs/{run.pk}/stop/", follow=True)
    run.refresh_from_db()
    assert not run.stop_requested
    assert "only an active run can be stopped" in response.content.decode()


def test_stop_needs_a_post(alice_client, alice):
    run = make_run(alice)
    assert alice_client.get(f"/runs/{run.pk}/stop/").status_code == 405


def test_log_api_returns_the_last_lines_of_train_log(alice_client, alice):
    run = make_run(alice)
    run.run_dir.mkdir(parents=True)
    lines = [f"line {i} " + "x" * 100 for i in range(5000)]
    (run.run_dir / "train.log").write_text("\n".join(lines) + "\n")
    data = alice_client.get(f"/api/runs/{run.pk}/log?lines=3").json()
    assert data["lines"] == lines[-3:]
    assert len(alice_client.get(f"/api/runs/{run.pk}/log").json()["lines"]) == 200
    bad = alice_client.get(f"/api/runs/{run.pk}/log?lines=999999")
    assert bad.status_code == 400 and bad.json()["field"] == "lines"


def test_log_api_answers_empty_before_the_log_exists(alice_client, alice):
    run = make_run(alice)
    assert alice_client.get(f"/api/runs/{run.pk}/log").json() == {"lines": []}


def test_compare_shows_the_chosen_visible_runs_only(alice_client, alice, bob):
    mine = [make_run(alice, name=f"mine-{i}") for i in range(2)]
    theirs = make_run(bob, name="theirs")
    for run in mine:
        add_metrics(run, range(1, 20))
    ids = f"{mine[0].pk},{mine[1].pk},{theirs.pk},abc,²,{10**30}"
    response = alice_client.get(f"/runs/compare/?ids={ids}")
    assert response.status_code == 200
    body = response.content.decode()
    start = body.index('<script id="compare-data" type="application/json">')
    data = json.loads(body[body.index(">", start) + 1 : body.index("</script>", start)])
    assert [r["id"] for r in data["runs"]] == [mine[0].pk, mine[1].pk]
    assert "theirs" not in body
    assert f"No such run: {theirs.pk}, {10**30}" in body
    assert "is not a run id" in body
    assert "&#x27;²&#x27; is not a run id" in body


def _config_table(body: str, table_id: str) -> str:
    start = body.index(f'<table class="config-table" id="{table_id}">')
    return body[start : body.index("</table>", start)]


def test_compare_lists_the_config_keys_that_differ(alice_client, alice, bob):
    base = {"optim": {"lr": 3e-05, "eps": 1e-08}, "data": {"seq_len": 1024}}
    first = make_run(alice, name="low-lr")
    second = make_run(alice, name="high-lr")
    theirs = make_run(bob, name="theirs")
    Run.objects.filter(pk=first.pk).update(config=base)
    Run.objects.filter(pk=second.pk).update(config={**base, "optim": {"lr": 1e-4, "eps": 1e-08}})
    Run.objects.filter(pk=theirs.pk).update(config={"secret": {"key": "bob-only-value"}})
    response = alice_client.get(f"/runs/compare/?ids={first.pk},{second.pk},{theirs.pk}")
    body = response.content.decode()
    differing = _config_table(body, "config-diff-table")
    assert '<tr data-key="optim.lr" class="differs">' in differing
    assert "<td>3e-05</td><td>0.0001</td>" in differing
    assert "data.seq_len" not in differing and "optim.eps" not in differing
    everything = _config_table(body, "config-all-table")
    assert (
        '<tr data-key="data.seq_len"><td><code>data.seq_len</code></td><td>1024</td>' in everything
    )
    assert "bob-only-value" not in body and "secret" not in body


def test_compare_escapes_config_values_and_says_when_nothing_differs(alice_client, alice):
    hostile = {"name": "<script>alert(1)</script>", "data": {"<b>": "x"}}
    runs = [make_run(alice, name=f"run-{i}") for i in range(2)]
    Run.objects.filter(pk__in=[r.pk for r in runs]).update(config=hostile)
    response = alice_client.get(f"/runs/compare/?ids={runs[0].pk},{runs[1].pk}&metric=lr")
    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body and "<b>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "data.&lt;b&gt;" in body
    assert "The configs are the same." in body
    assert 'id="config-diff-table"' not in body
    assert '<option value="lr" selected>' in body


def test_compare_ignores_an_unknown_metric(alice_client, alice):
    run = make_run(alice)
    body = alice_client.get(f"/runs/compare/?ids={run.pk}&metric=<x>").content.decode()
    assert '<option value="loss" selected>' in body
    assert "&lt;x&gt;" not in body and "<x>" not in body
