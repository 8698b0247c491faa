"""The foundation: login on every page, navigation, health, settings from the environment."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.django_db

PAGES = ["/", "/datasets/", "/models/", "/workers/"]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_users_are_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("path", PAGES)
def test_logged_in_user_sees_page_with_navigation(alice_client, path):
    response = alice_client.get(path)
    assert response.status_code == 200
    body = response.content.decode()
    for label in ("Datasets", "Models", "Runs", "Workers"):
        assert f">{label}</a>" in body


def test_login_page_is_public_and_logs_in(client, alice):
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "alice", "password": "alice-pass-123"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_health_endpoint_is_public(client):
    assert client.get("/healthz").json() == {"ok": True}


def test_api_paths_answer_401_json_to_anonymous(client):
    response = client.get("/api/runs/")
    assert response.status_code == 401
    assert response.json()["error"] == "authentication required"


def test_plotly_js_is_served_from_our_static_files():
    from django.contrib.staticfiles import finders

    found = finders.find("vendor/plotly/plotly.min.js")
    assert found and found.endswith("plotly.min.js")


def test_production_settings_pass_check_deploy(tmp_path):
    env = {
        "DEBUG": "0",
        "SECRET_KEY": "p9!vK2#qLz7@xW4rT8^mN1bY6*hJ3(cF5)dG0-sA" + "Zq8Lw3Ev7Ty1Ui5Oo2",
        "ALLOWED_HOSTS": "cpt.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


def test_production_settings_refuse_to_start_without_secret_key(tmp_path):
    env = {"DEBUG": "0", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "SECRET_KEY" in proc.stderr
