"""The whole user journey in a real browser, against the real stack (see conftest.py)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, log_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(300)]


def test_the_admin_logs_in_through_the_login_page_and_sees_the_navigation(live_db, new_page, shots):
    page = new_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    shots(page, "login")
    log_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    nav = page.locator("header nav")
    for name in ("Datasets", "Models", "Runs", "Workers"):
        expect(nav.get_by_role("link", name=name)).to_be_visible()
    expect(page.locator("header")).to_contain_text(ADMIN_USERNAME)
    shots(page, "runs")
