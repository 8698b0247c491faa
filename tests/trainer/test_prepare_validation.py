"""trainer.prepare.validate_corpus: the tokenizer-free report for the dataset page."""

from __future__ import annotations

import gzip
import json

import pytest

from trainer.prepare import validate_corpus

# (raw line, expected kind or None for a good document); line numbers are 1-based.
LINES: list[tuple[bytes, str | None]] = [
    (b'{"text": "A good first document."}', None),
    (b'{"text": "caf\xe9 latin-1, not UTF-8"}', "invalid_utf8"),
    (b'{"text": "unterminated', "invalid_json"),
    (b"", None),  # blank: neither a document nor bad
    (b'["a", "list"]', "not_object"),
    (b'{"body": "wrong field"}', "missing_field"),
    (b'{"text": ["not", "a", "string"]}', "not_string"),
    (b'{"text": "   "}', "empty"),
    (b'{"text": "\\u0007\\u0000"}', "empty"),  # nothing left after cleaning
    (b'{"text": "' + b"y" * 300 + b'"}', "too_long"),
    (b'{"text": "short"}', "too_short"),
    ('{"text": "Another good one, caf\u00e9."}'.encode(), None),
    (b'{"text": "invalid_json again', "invalid_json"),
    (b"\xff\xfe", "invalid_utf8"),
]


def write(path, lines):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_each_kind_of_bad_line_is_counted_with_its_line_number(tmp_path):
    src = write(tmp_path / "bad.jsonl", [raw for raw, _ in LINES])
    report = validate_corpus([src], max_doc_chars=200, min_chars=10)
    expected: dict[str, list[int]] = {}
    for number, (_, kind) in enumerate(LINES, start=1):
        if kind:
            expected.setdefault(kind, []).append(number)
    assert report.bad == {kind: len(numbers) for kind, numbers in expected.items()}
    for kind, numbers in expected.items():
        examples = report.bad_examples[kind]
        assert [e["line"] for e in examples] == numbers, kind
        assert all(e["file"] == "bad.jsonl" for e in examples)
    assert report.documents == 2
    assert report.lines == len(LINES)
    assert report.blank_lines == 1
    assert report.samples == ["A good first document.", "Another good one, caf\u00e9."]
    # too_short is a filter: it does not count toward rejection.
    assert report.invalid_total == report.bad_total - 1
    excerpt = report.bad_examples["invalid_json"][0]["excerpt"]
    assert excerpt.startswith('{"text": "unterminated')


def test_the_report_keeps_only_the_first_examples_of_each_kind(tmp_path):
    lines = [b'{"text": "fine document"}'] + [b"oops"] * 30
    report = validate_corpus([write(tmp_path / "a.jsonl", lines)], report_limit=5)
    assert report.bad == {"invalid_json": 30}
    assert [e["line"] for e in report.bad_examples["invalid_json"]] == [2, 3, 4, 5, 6]
    assert report.invalid_fraction == pytest.approx(30 / 31)


def test_report_is_json_ready_with_counts_bytes_and_estimated_tokens(tmp_path):
    texts = ["x" * 400, "y" * 800]
    plain = write(tmp_path / "a.jsonl", [json.dumps({"content": t}).encode() for t in texts])
    gz = tmp_path / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    seen = []
    report = validate_corpus(
        [plain, gz], text_field="content", progress=lambda *a: seen.append(a), sample_count=1
    )
    data = json.loads(json.dumps(report.to_dict()))
    assert data["documents"] == 4
    assert data["chars"] == 2400
    assert data["estimated_tokens"] == 600
    assert data["bytes"] == plain.stat().st_size + gz.stat().st_size
    assert data["bad"] == {} and data["invalid_total"] == 0
    assert len(data["samples"]) == 1
    assert [f["path"] for f in data["files"]] == [str(plain), str(gz)]
    assert seen[-1] == ("validate", data["bytes"], data["bytes"])
    # Line numbers restart in each file.
    bad = write(tmp_path / "c.jsonl", [b'{"content": "ok here"}', b"{"])
    report = validate_corpus([plain, bad], text_field="content")
    assert report.bad_examples["invalid_json"] == [{"file": "c.jsonl", "line": 2, "excerpt": "{"}]


def test_it_names_a_missing_input(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"inputs\[1\]"):
        validate_corpus([write(tmp_path / "a.jsonl", [b"{}"]), tmp_path / "missing.jsonl"])
    with pytest.raises(ValueError, match="at least one"):
        validate_corpus([])
