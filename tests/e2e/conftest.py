"""The real stack for browser tests, started the way ``bash scripts/start.sh`` starts it.

start.sh runs ``manage.py migrate`` and ``manage.py ensure_admin``, then the Procfile's
web (uvicorn), worker (Celery, queues gpu+cpu) and beat. Here pytest-django has already
migrated the test database; the admin is made per test (``transactional_db`` empties the
tables after each one) by the same ``ensure_admin`` command; and the Procfile's lines run
verbatim with these differences only: HOST/PORT are a free port, ``.venv/bin/python`` is
the interpreter running pytest (the same venv), and beat keeps its schedule file in a
temporary folder instead of the repo's var/. A few settings come through the environment,
as a deployment would set them: small upload chunks, a 2 s worker heartbeat, one torch
thread per process. Real Redis (the test's ``REDIS_URL`` database, flushed first) and real
PostgreSQL; Debian's chromium through Playwright.

Screenshots go to ``test-artifacts/e2e/<test>/``. The service logs live in the session's
temporary folder; their tails are attached to the report of a failing test, and they are
copied with the run files to ``test-artifacts/e2e/last-stack/`` when the stack stops.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tests.e2e.procfile import ROOT, expand, procfile_commands
from tests.stack import process, service_env, wait_for

ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-e2e-pass-123"
# Small chunks so even a tiny corpus crosses several of them and the progress bar moves.
UPLOAD_CHUNK_BYTES = 16 * 1024


@dataclass
class Stack:
    """Where the running stack listens and keeps its files."""

    base_url: str
    roots: dict[str, Path]
    logs: Path

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of each service log, for failure messages."""
        parts = []
        for log in [*sorted(self.logs.glob("*.log")), *self.roots["runs"].glob("*/train.log")]:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log}\n" + "\n".join(tail))
        return "\n".join(parts)


def _procfile_argv(name: str, env: dict[str, str], tmp: Path) -> list[str]:
    """A Procfile line as start.sh's honcho would run it, with the differences listed above."""
    argv = expand(procfile_commands()[name], env)
    if argv[0] == ".venv/bin/python":
        argv[0] = sys.executable
    if "--schedule" in argv:
        argv[argv.index("--schedule") + 1] = str(tmp / "celerybeat-schedule")
    return argv


def _keep_logs(stack: Stack) -> None:
    """Copy service logs and run files to test-artifacts/e2e/last-stack/ for a post-mortem
    (pytest deletes old temporary folders within minutes on a busy machine)."""
    keep = ARTIFACTS / "last-stack"
    shutil.rmtree(keep, ignore_errors=True)
    shutil.copytree(stack.logs, keep / "logs", dirs_exist_ok=True)
    for run_dir in stack.roots["runs"].glob("*"):
        for name in ("config.yaml", "events.jsonl", "train.log"):
            if (run_dir / name).is_file():
                (keep / "runs" / run_dir.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(run_dir / name, keep / "runs" / run_dir.name / name)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _worker_answers() -> bool:
    from worker.celery_app import app

    return bool(app.control.ping(timeout=1.0))


@pytest.fixture(scope="package")
def stack(django_db_setup, tmp_path_factory) -> Iterator[Stack]:
    """uvicorn + Celery worker + beat from the Procfile, on the test database."""
    import redis

    from tests.stack import free_port

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # no stale tasks from an earlier run
    tmp = tmp_path_factory.mktemp("e2e-stack")
    roots = {name: tmp / name for name in ("media", "prepared", "runs")}
    # Per-session folder: another e2e session on the same checkout must not mix its logs in.
    logs = tmp / "logs"
    port = free_port()
    env = service_env(
        HOST="127.0.0.1",
        PORT=str(port),
        MEDIA_ROOT=str(roots["media"]),
        PREPARED_ROOT=str(roots["prepared"]),
        RUNS_ROOT=str(roots["runs"]),
        UPLOAD_CHUNK_BYTES=str(UPLOAD_CHUNK_BYTES),
        # The worker re-registers within a heartbeat after each test empties the tables.
        RUN_HEARTBEAT_SECONDS="2",
        # Keep the 2-core CI machine responsive: one thread per torch process.
        OMP_NUM_THREADS="1",
    )
    stack = Stack(base_url=f"http://127.0.0.1:{port}", roots=roots, logs=logs)
    with ExitStack() as running:
        procs = [
            running.enter_context(
                process(_procfile_argv(name, env, tmp), logs / f"{name}.log", env)
            )
            for name in ("web", "worker", "beat")
        ]
        try:
            wait_for(lambda: _healthy(stack.base_url + "/healthz"), 90, what="uvicorn /healthz")
            wait_for(_worker_answers, 90, interval=1.0, what="the Celery worker to answer ping")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{stack.log_tail()}") from None
        try:
            yield stack
        finally:
            _keep_logs(stack)
        # Ask all three to stop at once; process() then waits for each (and kills stragglers).
        for proc in procs:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tail of the web/worker/beat logs (and the run logs)."""
    report = yield
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, Stack):
        report.sections.append(("stack logs", stack.log_tail()))
    return report


@pytest.fixture
def live_db(transactional_db, settings, stack, monkeypatch):
    """Rows the stack can see, passwords it can check, and its file roots in this process.

    The servers use Django's default hashers, so users made here get a PBKDF2 hash (the
    suite's fast MD5 hasher is unknown to them). The admin comes from ``ensure_admin``,
    the command start.sh runs.
    """
    from django.core.management import call_command

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    settings.MEDIA_ROOT = stack.roots["media"]
    settings.PREPARED_ROOT = stack.roots["prepared"]
    settings.RUNS_ROOT = stack.roots["runs"]
    monkeypatch.setenv("ADMIN_USERNAME", ADMIN_USERNAME)
    monkeypatch.setenv("ADMIN_PASSWORD", ADMIN_PASSWORD)
    call_command("ensure_admin", stdout=io.StringIO())


@pytest.fixture
def make_user(live_db, django_user_model):
    """``make_user(name)`` -> a user whose password is ``<name>-pass-123`` (PBKDF2)."""

    def make(username: str, **extra):
        return django_user_model.objects.create_user(
            username, password=f"{username}-pass-123", **extra
        )

    return make


@pytest.fixture(scope="package")
def browser():
    """Debian's chromium, headless (Playwright never downloads a browser here)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the tests' own ORM calls
    # are still synchronous and safe, so Django must not refuse them (only while it runs).
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()
    if saved is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


@dataclass
class Shots:
    """Numbered full-page screenshots of one test, in test-artifacts/e2e/<test>/."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    def __call__(self, page, label: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@pytest.fixture
def shots(request) -> Shots:
    folder = ARTIFACTS / re.sub(r"\W+", "-", request.node.name).strip("-")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Shots(folder)


@pytest.fixture
def new_page(browser, stack, request):
    """Open a page in a fresh browser context (its own cookies); all are closed at the end."""
    contexts = []

    def open_page():
        context = browser.new_context(
            base_url=stack.base_url, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def log_in(page, username: str, password: str) -> None:
    """Log in through the real login page and land on the run list."""
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-submit")
    page.wait_for_url(re.compile(r"/$"))


@pytest.fixture
def admin_page(live_db, new_page):
    """A page logged in as the admin that ``ensure_admin`` created."""
    page = new_page()
    log_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    return page


# Records every value the upload progress bar takes (as a fraction of its max) in
# sessionStorage, which survives the page's redirect to the dataset once the upload ends.
_PROGRESS_RECORDER = """
(() => {
  const value = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value");
  Object.defineProperty(HTMLProgressElement.prototype, "value", {
    configurable: true,
    get() { return value.get.call(this); },
    set(v) {
      value.set.call(this, v);
      if (this.id !== "upload-progress") return;
      const seen = JSON.parse(sessionStorage.getItem("e2e-upload-progress") || "[]");
      seen.push(this.position);
      sessionStorage.setItem("e2e-upload-progress", JSON.stringify(seen));
    },
  });
})();
"""


def upload_corpus(page, path: Path, name: str) -> list[float]:
    """Upload ``path`` on the datasets page; return the progress bar's values (0..1).

    Ends on the dataset's own page, where the upload redirects when it completes.
    """
    page.add_init_script(_PROGRESS_RECORDER)
    page.goto("/datasets/")
    page.evaluate("sessionStorage.removeItem('e2e-upload-progress')")
    form = page.locator("#upload-form")
    form.locator("input[type=file]").set_input_files(str(path))
    form.locator("[name=name]").fill(name)
    form.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"/datasets/\d+/$"), timeout=60_000)
    return json.loads(page.evaluate("sessionStorage.getItem('e2e-upload-progress')") or "[]")


def wait_for_dataset(page, timeout_s: float = 90) -> str:
    """Wait on a dataset page until validation settles; return the final state."""
    state = page.locator("#dataset-state")
    expect(state).not_to_have_attribute(
        "data-state", re.compile("^(uploading|validating)$"), timeout=timeout_s * 1000
    )
    return state.get_attribute("data-state")
