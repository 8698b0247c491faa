"""Read the app's start command (scripts/start.sh + Procfile) as argument lists.

Both the browser tests (which start the stack exactly as ``bash scripts/start.sh``
does) and the compose test (which checks that every container runs one of these
commands) read them from here, so neither keeps its own copy that could drift.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "Procfile"
START_SCRIPT = ROOT / "scripts" / "start.sh"

# Options whose value is where a process listens: containers and tests choose their own.
ADDRESS_OPTIONS = ("--host", "--port")
# Celery's queue option: a deployment may run a subset of the Procfile's queues.
QUEUE_OPTIONS = ("-Q", "--queues")
VENV_PREFIX = ".venv/bin/"
_SHELL_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def procfile_commands(path: Path = PROCFILE) -> dict[str, list[str]]:
    """``{process name: argv}`` of each Procfile line, variables left unexpanded."""
    commands: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip().isidentifier():
            raise ValueError(f"{path.name} line {number}: expected 'name: command', got {line!r}")
        commands[name.strip()] = shlex.split(command)
    return commands


def setup_commands(path: Path = START_SCRIPT) -> list[list[str]]:
    """The ``manage.py`` steps the start script runs before the Procfile (migrate, ...)."""
    steps = []
    for line in path.read_text().splitlines():
        argv = shlex.split(line, comments=True)
        if len(argv) >= 2 and argv[0].endswith("/python") and argv[1] == "manage.py":
            steps.append(argv)
    return steps


def starts_procfile(path: Path = START_SCRIPT) -> bool:
    """Whether the start script ends by running the Procfile with honcho."""
    return bool(re.search(r"honcho start -f Procfile\b", path.read_text()))


def expand(argv: list[str], env: dict[str, str]) -> list[str]:
    """Expand ``${NAME}`` / ``${NAME:-default}`` as the shell that honcho uses would."""
    return [
        _SHELL_VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), arg) for arg in argv
    ]


def shape(argv: list[str]) -> tuple[tuple[str, ...], frozenset[str]]:
    """What must match between two ways of starting a process.

    The program loses its venv prefix (``.venv/bin/python`` and ``/app/.venv/bin/python``
    are the same program), the values of ``--host``/``--port`` become placeholders, and
    the queue list is returned apart so a caller can accept a subset of it.
    """
    words: list[str] = []
    queues: frozenset[str] = frozenset()
    args = iter(argv)
    for index, arg in enumerate(args):
        if index == 0:
            words.append(os.path.basename(arg) if VENV_PREFIX in arg else arg)
        elif arg in ADDRESS_OPTIONS:
            words += [arg, "<" + arg.strip("-") + ">"]
            next(args, None)
        elif arg in QUEUE_OPTIONS:
            words += ["-Q", "<queues>"]
            queues = frozenset(q for q in next(args, "").split(",") if q)
        else:
            words.append(arg)
    return tuple(words), queues
