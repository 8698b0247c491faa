"""Line validation and the bad-line report.

One JSONL line becomes either a cleaned document text or a bad-line kind:

- ``invalid_utf8``: the bytes are not strict UTF-8;
- ``invalid_json``: not parseable JSON;
- ``not_object``: JSON, but not an object;
- ``missing_field``: the object lacks the text field;
- ``not_string``: the field is not a string;
- ``empty``: the field is empty or only whitespace (after cleaning);
- ``too_long``: longer than ``max_doc_chars`` characters (or the line is over the byte limit);
- ``too_short``: shorter than ``min_chars`` after cleaning (a filter: it does not count
  toward rejecting the corpus).

Blank lines are counted (``blank_lines``) but are not documents and not bad.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.data.cleaning import clean_text
from trainer.data.reading import iter_line_chunks

__all__ = [
    "BAD_KINDS",
    "FILTER_KINDS",
    "LineChecker",
    "ValidationReport",
    "validate_corpus",
]

BAD_KINDS = (
    "invalid_utf8",
    "invalid_json",
    "not_object",
    "missing_field",
    "not_string",
    "empty",
    "too_long",
    "too_short",
)
# Kinds that are the corpus owner's choice of filter, not broken input.
FILTER_KINDS = frozenset({"too_short"})
EXCERPT_CHARS = 80
SAMPLE_CHARS = 500
DEFAULT_MAX_DOC_CHARS = 1_000_000
CHARS_PER_TOKEN = 4  # the usual rough estimate for English text and BPE vocabularies

ProgressFn = Callable[[str, int, int], None]


def max_line_bytes_for(max_doc_chars: int) -> int:
    """Byte limit for a raw line: room for the text fully \\u-escaped plus other fields."""
    return max_doc_chars * 6 + (64 << 10)


def excerpt(raw: bytes) -> str:
    """A short, printable head of a raw line for the report."""
    text = raw[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text[:EXCERPT_CHARS]


@dataclass(frozen=True)
class LineChecker:
    """Turns one raw line into ``(text, None)`` or ``(None, bad_kind)``; picklable for workers."""

    text_field: str = "text"
    max_doc_chars: int = DEFAULT_MAX_DOC_CHARS
    min_chars: int = 0

    def check(self, raw: bytes, oversized: bool = False) -> tuple[str | None, str | None]:
        """Validate and clean one line (without its newline)."""
        if oversized:
            return None, "too_long"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None, "invalid_utf8"
        if line.startswith("\ufeff"):  # a UTF-8 byte-order mark on a file's first line
            line = line[1:]
        try:
            obj = json.loads(line)
        except ValueError:
            return None, "invalid_json"
        if not isinstance(obj, dict):
            return None, "not_object"
        if self.text_field not in obj:
            return None, "missing_field"
        text = obj[self.text_field]
        if not isinstance(text, str):
            return None, "not_string"
        if len(text) > self.max_doc_chars:
            return None, "too_long"
        text = clean_text(text)
        if not text.strip():
            return None, "empty"
        if len(text) < self.min_chars:
            return None, "too_short"
        return text, None


@dataclass
class ValidationReport:
    """What a pass over the corpus found; ``to_dict()`` is JSON-ready.

    ``documents`` counts valid documents (before dedup); ``lines`` every line
    read, blank ones included; ``bad`` maps each bad kind to its count and
    ``bad_examples`` to its first ``report_limit`` occurrences.
    """

    files: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0
    blank_lines: int = 0
    documents: int = 0
    bytes: int = 0
    chars: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    bad_examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    report_limit: int = 20
    sample_count: int = 5

    @property
    def estimated_tokens(self) -> int:
        """A tokenizer-free estimate: characters / 4."""
        return self.chars // CHARS_PER_TOKEN

    @property
    def bad_total(self) -> int:
        """All bad lines, filters included."""
        return sum(self.bad.values())

    @property
    def invalid_total(self) -> int:
        """Bad lines that count toward rejection (every kind except the filters)."""
        return sum(n for k, n in self.bad.items() if k not in FILTER_KINDS)

    @property
    def invalid_fraction(self) -> float:
        """invalid_total over the non-blank lines read (0 for an empty corpus)."""
        read = self.lines - self.blank_lines
        return self.invalid_total / read if read else 0.0

    def add_bad(self, kind: str, file: str, line: int, raw: bytes) -> None:
        """Count one bad line and keep it as an example while under the limit."""
        self.bad[kind] = self.bad.get(kind, 0) + 1
        examples = self.bad_examples.setdefault(kind, [])
        if len(examples) < self.report_limit:
            examples.append({"file": file, "line": line, "excerpt": excerpt(raw)})

    def add_document(self, text: str) -> None:
        """Count one valid document and keep it as a sample while under the limit."""
        self.documents += 1
        self.chars += len(text)
        if len(self.samples) < self.sample_count:
            self.samples.append(text[:SAMPLE_CHARS])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only."""
        return {
            "files": self.files,
            "lines": self.lines,
            "blank_lines": self.blank_lines,
            "documents": self.documents,
            "bytes": self.bytes,
            "chars": self.chars,
            "estimated_tokens": self.estimated_tokens,
            "bad": {k: self.bad[k] for k in BAD_KINDS if k in self.bad},
            "bad_total": self.bad_total,
            "invalid_total": self.invalid_total,
            "invalid_fraction": self.invalid_fraction,
            "bad_examples": {k: self.bad_examples[k] for k in BAD_KINDS if k in self.bad_examples},
            "samples": self.samples,
        }

    def summary(self) -> str:
        """A few human-readable lines."""
        out = [
            f"{self.documents} valid documents in {self.lines} lines "
            f"({self.bytes} bytes, ~{self.estimated_tokens} tokens)",
        ]
        for kind in BAD_KINDS:
            if kind in self.bad:
                examples = self.bad_examples.get(kind)
                where = (
                    f" (first: {examples[0]['file']} line {examples[0]['line']})"
                    if examples
                    else ""
                )
                out.append(f"  {kind}: {self.bad[kind]}{where}")
        return "\n".join(out)


def check_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Input paths as Paths; a clear error for none, a missing file or a directory."""
    if not paths:
        raise ValueError("inputs: at least one input file is required")
    out = []
    for i, p in enumerate(paths):
        path = Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"inputs[{i}]: no such file: {path}")
        out.append(path)
    return out


def validate_corpus(
    paths: Iterable[str | Path],
    *,
    text_field: str = "text",
    max_doc_chars: int = DEFAULT_MAX_DOC_CHARS,
    min_chars: int = 0,
    report_limit: int = 20,
    sample_count: int = 5,
    progress: ProgressFn | None = None,
) -> ValidationReport:
    """One streaming pass without a tokenizer: counts, bad lines by kind, samples.

    ``progress("validate", bytes_done, bytes_total)`` is called after each chunk
    (raw, i.e. compressed, bytes).
    """
    files = check_inputs(list(paths))
    checker = LineChecker(text_field=text_field, max_doc_chars=max_doc_chars, min_chars=min_chars)
    report = ValidationReport(report_limit=report_limit, sample_count=sample_count)
    total = sum(f.stat().st_size for f in files)
    report.bytes = total
    done_before = 0
    for index, path in enumerate(files):
        size = path.stat().st_size
        report.files.append({"path": str(path), "bytes": size})
        for chunk in iter_line_chunks(
            path, file_index=index, max_line_bytes=max_line_bytes_for(max_doc_chars)
        ):
            for k, raw in enumerate(chunk.lines):
                report.lines += 1
                if not raw.strip():
                    report.blank_lines += 1
                    continue
                text, kind = checker.check(raw, k in chunk.oversized)
                if kind is not None:
                    report.add_bad(kind, path.name, chunk.first_line + k, raw)
                else:
                    assert text is not None
                    report.add_document(text)
            if progress is not None:
                progress("validate", done_before + chunk.bytes_done, total)
        done_before += size
    return report
