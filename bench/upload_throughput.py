"""Chunked upload through a real uvicorn web process: throughput and the server's memory.

Starts the app under uvicorn (as the Procfile does) on a throwaway SQLite database,
uploads a random file in chunks over HTTP with the browser's protocol (session cookie,
CSRF header, PUT at each offset), then hashes the stored file the way the validation
task does. Prints MB/s and the web process's resident memory after the first chunk and
its peak (VmHWM) at the end, which must stay flat whatever the file size.

    .venv/bin/python bench/upload_throughput.py [--mb 256] [--chunk-mb 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def proc_mb(pid: int, key: str) -> float:
    """VmRSS / VmHWM of a process in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="File size to upload (MB).")
    parser.add_argument("--chunk-mb", type=int, default=8, help="Chunk size (MB).")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    os.environ.update(
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        MEDIA_ROOT=str(tmp / "media"),
        UPLOAD_CHUNK_BYTES=str(args.chunk_mb << 20),
        UPLOAD_MAX_BYTES=str(max(args.mb, 1) << 21),
        DJANGO_SETTINGS_MODULE="webapp.settings",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from trainer.data.reading import sha256_file
    from webapp.datasets.models import Dataset

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-pass-123")
    login = Client()
    login.force_login(user)
    session = login.cookies[settings.SESSION_COOKIE_NAME].value

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "webapp.asgi:application", "--port", str(port),
         "--log-level", "warning"],
        cwd=ROOT,
    )  # fmt: skip
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(100):
            try:
                conn.request("GET", "/datasets/", headers={"Cookie": f"sessionid={session}"})
                break
            except OSError:
                time.sleep(0.2)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        response = conn.getresponse()
        response.read()
        csrf = response.headers["Set-Cookie"].split("csrftoken=")[1].split(";")[0]
        headers = {"Cookie": f"sessionid={session}; csrftoken={csrf}", "X-CSRFToken": csrf}

        def call(method: str, url: str, body: bytes, ctype: str) -> dict:
            conn.request(method, url, body=body, headers={**headers, "Content-Type": ctype})
            r = conn.getresponse()
            data = json.loads(r.read())
            assert r.status in (200, 201), data
            return data

        total = args.mb << 20
        chunk = os.urandom(args.chunk_mb << 20)
        start = json.dumps({"filename": "bench.jsonl", "size": total}).encode()
        pk = call("POST", "/datasets/uploads/", start, "application/json")["id"]
        call("PUT", f"/datasets/{pk}/chunk/?offset=0", chunk, "application/octet-stream")
        after_first = proc_mb(server.pid, "VmRSS")
        t0 = time.perf_counter()
        offset = len(chunk)
        while offset < total:
            body = chunk if total - offset >= len(chunk) else chunk[: total - offset]
            offset = call(
                "PUT", f"/datasets/{pk}/chunk/?offset={offset}", body, "application/octet-stream"
            )["received_bytes"]
        upload_s = time.perf_counter() - t0
        peak = proc_mb(server.pid, "VmHWM")
        end_rss = proc_mb(server.pid, "VmRSS")
    finally:
        server.terminate()
        server.wait(timeout=30)
    path = Dataset.objects.get(pk=pk).partial_path
    assert path.stat().st_size == total
    t1 = time.perf_counter()
    sha256_file(path)
    hash_s = time.perf_counter() - t1
    print(f"uploaded {args.mb} MB in {args.chunk_mb} MB chunks over HTTP to uvicorn (loopback)")
    print(f"  throughput: {(total - len(chunk)) / 2**20 / upload_s:.0f} MB/s")
    print(
        f"  web process RSS: {after_first:.0f} MB after the first chunk, {end_rss:.0f} MB at "
        f"the end, peak {peak:.0f} MB"
    )
    print(f"  sha256 of the stored file (validation task): {args.mb / hash_s:.0f} MB/s")


if __name__ == "__main__":
    main()
