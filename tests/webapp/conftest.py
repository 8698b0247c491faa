"""Fixtures shared by the web app's browser tests."""

from __future__ import annotations

import pytest

from tests.webapp.browser import logged_in_browser


@pytest.fixture
def browser_context(live_server, alice, monkeypatch, settings):
    """A Debian chromium context logged in as alice against the live server.

    A test module may override it (the upload test first shrinks the chunk size).
    """
    yield from logged_in_browser(live_server, alice, monkeypatch, settings)
