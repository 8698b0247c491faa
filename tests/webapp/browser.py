"""A logged-in Debian chromium (Playwright) against pytest-django's live server."""

from __future__ import annotations

from collections.abc import Iterator

from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = "/usr/bin/chromium"


def logged_in_browser(live_server, user, monkeypatch, settings) -> Iterator[BrowserContext]:
    """Yield a browser context whose session cookie belongs to ``user``."""
    from django.test import Client

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(base_url=live_server.url)
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
        )
        yield context
        browser.close()
