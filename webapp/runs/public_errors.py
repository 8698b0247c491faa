"""Error messages fit for the browser: short, and without the server's absolute paths.

An export or a sample fails inside a trainer CLI whose messages name server paths
(``/srv/runs/12/checkpoints/step-000100 is not a DCP checkpoint``). The page should say
what went wrong without telling a user how the server's disks are laid out, so every
error a row stores or a payload carries goes through :func:`scrub_paths`: paths under
the run directory become relative to it, paths under the configured roots get a
placeholder (``<runs>``, ``<models>``...), and any other absolute path keeps only its
last name (``…/tokenizer.json``). :func:`scrub_paths` and :func:`short_error` are pure;
:func:`server_roots` reads the settings.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from django.conf import settings

__all__ = ["PUBLIC_ERROR_CHARS", "public_error", "scrub_paths", "server_roots", "short_error"]

# Enough for a config or tokenizer message; a page cell is no place for a traceback.
PUBLIC_ERROR_CHARS = 600

# Characters of a path component (no spaces: a message's words end a path).
_NAME = r"[\w.+@%=,-]"
# A path starts where no path, word, URL (``https://``) or placeholder (``<runs>/``,
# ``…/``) goes on.
_NOT_AFTER = r"(?<![\w.~<>/…-])"
_ANY_ABSOLUTE = re.compile(_NOT_AFTER + rf"/{_NAME}+(?:/{_NAME}+)*/?")


def scrub_paths(text: str, roots: Mapping[str | Path, str]) -> str:
    """``text`` with no absolute path left in it.

    ``roots`` maps a folder to the name it is shown as; an empty name means "relative
    to this folder" (the run directory). The longest matching root wins, so a run
    directory inside ``RUNS_ROOT`` shows as relative, not as ``<runs>/12/...``. Both
    the given and the symlink-resolved spelling of each root are recognised. What is
    left over keeps only its last component: ``/opt/x/tokenizer.json`` ->
    ``…/tokenizer.json``.
    """
    spellings: dict[str, str] = {}
    for root, label in roots.items():
        for spelling in {str(root), _resolved(root)}:
            spelling = spelling.rstrip("/")
            if spelling.startswith("/") and len(spelling) > 1:
                spellings.setdefault(spelling, label)
    # file:///x is a path too; drop the scheme so the rules below see /x.
    text = re.sub(r"file://(?=/)", "", text)
    for spelling in sorted(spellings, key=len, reverse=True):
        label = spellings[spelling]
        pattern = re.compile(_NOT_AFTER + re.escape(spelling) + rf"(?!{_NAME})(/)?")
        text = pattern.sub(lambda m, label=label: _relabel(label, bool(m.group(1))), text)
    return _ANY_ABSOLUTE.sub(_last_name, text)


def short_error(exc: BaseException) -> str:
    """One line or so saying what failed, before any path scrubbing.

    An exception may carry its own browser-facing text in ``public_message`` (the
    worker's CLI errors do: the trainer's ``{"error": ...}`` line, not its stderr);
    a timeout says how long it waited instead of quoting the whole command line.
    """
    message = getattr(exc, "public_message", None)
    if isinstance(message, str) and message.strip():
        text = message.strip()
    elif isinstance(exc, subprocess.TimeoutExpired):
        text = f"timed out after {exc.timeout:g} s"
    else:
        detail = str(exc).strip()
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if len(text) > PUBLIC_ERROR_CHARS:
        text = text[: PUBLIC_ERROR_CHARS - 1] + "…"
    return text


def server_roots(run_id: int | None = None) -> dict[str, str]:
    """The folders this deployment's messages may name, each with its public name."""
    roots: dict[str, str] = {
        str(settings.RUNS_ROOT): "<runs>",
        str(settings.MEDIA_ROOT): "<media>",
        str(settings.PREPARED_ROOT): "<prepared>",
        str(settings.BASE_DIR): "<app>",
        sys.prefix: "<python>",
        str(Path.home()): "~",
    }
    for model_root in settings.BASE_MODEL_ROOTS:
        roots[str(model_root)] = "<models>"
    if run_id is not None:
        roots[str(Path(settings.RUNS_ROOT) / str(run_id))] = ""
    return roots


def public_error(exc: BaseException, run_id: int | None = None) -> str:
    """:func:`short_error` with this deployment's paths scrubbed: what a row stores."""
    return scrub_paths(short_error(exc), server_roots(run_id))


def _relabel(label: str, slash: bool) -> str:
    if label:
        return f"{label}/" if slash else label
    return "" if slash else "."  # the run directory itself


def _last_name(match: re.Match[str]) -> str:
    return "…/" + match.group(0).rstrip("/").rsplit("/", 1)[-1]


def _resolved(root: str | Path) -> str:
    try:
        return str(Path(root).resolve())
    except (OSError, RuntimeError):  # a symlink loop: the given spelling is all there is
        return str(root)
