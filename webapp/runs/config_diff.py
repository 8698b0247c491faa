"""Which config keys differ between runs: the compare page's "what differs" table.

Pure functions over the stored config JSON (no Django). Configs come from users (a
form, an imported YAML, the API), so nothing about their shape is trusted: any JSON
value is accepted, deep nesting stops at :data:`MAX_DEPTH`, long values are cut to
:data:`MAX_VALUE_CHARS` and at most :data:`MAX_KEYS` keys are listed. Values become
plain text here; the template escapes them like any other text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 12
"""Containers nested deeper than this are shown as one JSON value."""
MAX_VALUE_CHARS = 200
MAX_KEYS = 500
ROOT_KEY = "(config)"
"""The key a config that is not a JSON object is listed under."""


@dataclass(frozen=True)
class ConfigRow:
    """One dotted key: its value per run as text (None where the run lacks the key)."""

    key: str
    cells: tuple[str | None, ...]
    differs: bool


@dataclass(frozen=True)
class ConfigTable:
    """All rows (sorted by key), and whether keys were left out."""

    rows: tuple[ConfigRow, ...]
    truncated: bool

    @property
    def differing(self) -> tuple[ConfigRow, ...]:
        """Only the rows whose values are not the same in every run."""
        return tuple(row for row in self.rows if row.differs)


def flatten_config(config: Any) -> dict[str, Any]:
    """``{"optim": {"lr": 1e-4}, "data": {"corpora": [{"weight": 1}]}}`` ->
    ``{"optim.lr": 1e-4, "data.corpora.0.weight": 1}``.

    List items are numbered like ``ConfigError`` field names (``data.corpora.0.weight``).
    An empty dict or list stays a value (``{}`` / ``[]``) so the key is not lost.
    """
    flat: dict[str, Any] = {}
    if isinstance(config, Mapping):
        _flatten(config, "", flat, 0)
    else:
        flat[ROOT_KEY] = config
    return flat


def _flatten(value: Any, prefix: str, out: dict[str, Any], depth: int) -> None:
    if isinstance(value, Mapping):
        items: Sequence[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    else:
        out[prefix] = value
        return
    if not items or depth >= MAX_DEPTH:
        out[prefix] = value
        return
    for name, child in items:
        key = f"{prefix}.{name}" if prefix else str(name)
        _flatten(child, key, out, depth + 1)


def compare_configs(configs: Sequence[Any]) -> ConfigTable:
    """The flattened keys of ``configs`` side by side, one cell per config.

    A key is *different* when its value is not the same in every config, a key
    missing from some configs included. Values compare by their JSON text, so
    ``1`` and ``1.0`` or ``true`` and ``1`` count as different (what the user wrote).
    """
    flats = [flatten_config(c) for c in configs]
    # Sorted, because PostgreSQL's jsonb does not keep the order the keys were written in;
    # sorting groups each section's keys (data.*, optim.*) and numbers list items in order.
    keys = sorted({key for flat in flats for key in flat}, key=_key_order)
    truncated = len(keys) > MAX_KEYS
    rows = []
    for key in keys[:MAX_KEYS]:
        texts = [_canonical(flat[key]) if key in flat else None for flat in flats]
        cells = tuple(
            None if key not in flat else _display(flat[key], text)
            for flat, text in zip(flats, texts, strict=True)
        )
        rows.append(ConfigRow(key=_cut(key), cells=cells, differs=len(set(texts)) > 1))
    return ConfigTable(rows=tuple(rows), truncated=truncated)


def _key_order(key: str) -> tuple[tuple[int, int, str], ...]:
    """``data.corpora.10.path`` after ``data.corpora.2.path``: list indices sort as numbers."""
    return tuple(
        (0, int(part), "") if part.isascii() and part.isdigit() else (1, 0, part)
        for part in key.split(".")
    )


def _canonical(value: Any) -> str:
    """The value as JSON text, the form in which two values are compared."""
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):  # not JSON (a config built outside the form)
        return repr(value)


def _display(value: Any, canonical: str | None) -> str:
    """A string shows as itself (a path, a name); anything else as its JSON text."""
    return _cut(value if isinstance(value, str) else str(canonical))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
