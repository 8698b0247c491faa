"""Start, find and signal a run's torchrun: no Django here, only processes and files.

torchrun is started in its own session (so it outlives a worker restart) behind a tiny
``sh`` wrapper that writes torchrun's exit status to ``<run_dir>/exit_code``: a worker
that re-attaches to a run it did not spawn cannot ``waitpid`` it, but can read that file.
The stored pid is the wrapper's, which is also the process-group id of wrapper + torchrun.

torchrun starts each rank in a session of its own, so signalling torchrun's group does
not reach the ranks: on SIGTERM torchrun forwards the signal to them and waits
``--shutdown-timeout`` seconds (we pass the stop grace period) before killing them. The
final SIGKILL therefore goes to every descendant's process group, found through /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

EXIT_CODE_FILE = "exit_code"
LOG_FILE = "train.log"
EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.yaml"

# `trap :` (not `trap ''`) so the wrapper outlives SIGTERM and records torchrun's
# status, while its children still get the default disposition (an ignored signal
# would be inherited across exec). `$?` is written atomically through a rename.
# The repository root (holding trainer/): torchrun runs in the run directory, so the
# trainer package must be found through PYTHONPATH rather than the working directory.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

_WRAPPER = 'trap : TERM INT HUP; "$@"; rc=$?; echo $rc > "$EXIT_FILE.tmp"; mv "$EXIT_FILE.tmp" "$EXIT_FILE"'


def build_command(
    run_dir: Path,
    *,
    nproc_per_node: int,
    resume: str | None = None,
    shutdown_timeout: int = 120,
    module: str = "trainer.train",
    attempt: int | None = None,
) -> list[str]:
    """The torchrun command line for one node.

    Through ``trainer.torchrun``: torchrun with the same arguments and exit codes, minus
    the traceback it would leave in ``train.log`` on every stop.
    ``--standalone`` gives each launch its own rendezvous on a free port, so several
    runs on one host never fight over a port. ``resume`` is "latest" or a checkpoint
    folder; ``attempt`` is passed as ``--attempt N`` (the trainer stops once
    ``attempt.json`` names a newer one: trainer/fence.py); ``module`` is only replaced
    by tests.
    """
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    cmd = [
        sys.executable, "-m", "trainer.torchrun",
        "--standalone", "--nnodes", "1", "--nproc-per-node", str(nproc_per_node),
        "--shutdown-timeout", str(shutdown_timeout),
        "-m", module,
        "--config", str(run_dir / CONFIG_FILE), "--run-dir", str(run_dir),
    ]  # fmt: skip
    if resume:
        cmd += ["--resume", resume]
    if attempt is not None:
        cmd += ["--attempt", str(attempt)]
    return cmd


def spawn(cmd: list[str], run_dir: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``cmd`` in a new session with stdout/stderr appended to ``train.log``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / EXIT_CODE_FILE).unlink(missing_ok=True)
    child_env = dict(env if env is not None else os.environ)
    child_env["EXIT_FILE"] = str(run_dir / EXIT_CODE_FILE)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    paths = [str(PROJECT_ROOT), *filter(None, child_env.get("PYTHONPATH", "").split(os.pathsep))]
    child_env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    with (run_dir / LOG_FILE).open("ab") as log:
        return subprocess.Popen(
            ["/bin/sh", "-c", _WRAPPER, "sh", *cmd],
            cwd=run_dir,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, parent pid, session id) from /proc, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[3])


def is_alive(pid: int | None, run_dir: Path) -> bool:
    """True when ``pid`` is a live (not zombie) wrapper launched for ``run_dir``.

    Checking the command line guards against pid reuse after a reboot or a long gap.
    """
    if not pid:
        return False
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return str(run_dir).encode() in cmdline


def find_wrappers(runs_root: Path) -> dict[int, Path]:
    """{pid: run_dir} of every live launch wrapper on this host for a run under ``runs_root``.

    Found from /proc, not the database: a torchrun whose row now names another host or
    pid (its run was lost and resumed elsewhere) is still found here.
    """
    root = str(runs_root)
    found: dict[int, Path] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv[:2] != ["/bin/sh", "-c"] or len(argv) < 3 or argv[2] != _WRAPPER:
            continue
        if "--run-dir" in argv and argv.index("--run-dir") + 1 < len(argv):
            run_dir = argv[argv.index("--run-dir") + 1]
            pid = int(entry.name)
            stat = _proc_stat(pid)
            # The wrapper leads its own session (start_new_session). For a moment after
            # it forks to run "$@", the child still shows the wrapper's command line:
            # only the session leader counts, so each launch is found once.
            if (
                Path(run_dir).parent == Path(root)
                and stat
                and stat[0] not in ("Z", "X")
                and stat[2] == pid
            ):
                found[pid] = Path(run_dir)
    return found


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first), found by scanning /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[1], []).append(int(entry.name))
    out: list[int] = []
    queue = deque(children.get(pid, []))
    while queue:
        child = queue.popleft()
        out.append(child)
        queue.extend(children.get(child, []))
    return out


def signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group led by ``pid``; False if it is gone."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_tree(pid: int) -> None:
    """SIGKILL the wrapper's group and the group of every descendant (the ranks' sessions)."""
    signal_tree(pid, signal.SIGKILL)


def signal_tree(pid: int, sig: int) -> None:
    """Send ``sig`` to the wrapper's group and to the group of every descendant."""
    groups = {pid}
    for child in descendants(pid):
        try:
            groups.add(os.getpgid(child))
        except ProcessLookupError:
            continue
    for group in groups:
        signal_group(group, sig)


def read_exit_code(run_dir: Path) -> int | None:
    """torchrun's exit status written by the wrapper, or None if it never got that far."""
    try:
        return int((run_dir / EXIT_CODE_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def log_tail(run_dir: Path, lines: int = 40, block: int = 64 * 1024) -> list[str]:
    """The last ``lines`` lines of ``train.log``, reading backwards (logs grow to gigabytes)."""
    try:
        f = (run_dir / LOG_FILE).open("rb")
    except FileNotFoundError:
        return []
    with f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        data = b""
        while end > 0 and data.count(b"\n") <= lines:
            start = max(0, end - block)
            f.seek(start)
            data = f.read(end - start) + data
            end = start
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]
