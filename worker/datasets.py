"""Validate and profile an uploaded corpus (the plain function behind the Celery task).

Steps, all streaming so memory stays flat whatever the file size:
1. hash the stored partial file and compare with the sha256 the browser sent;
2. move it to its final name;
3. run ``trainer.prepare.validate_corpus`` (strict UTF-8, one JSON object a line,
   text field present) and store its report as the dataset's stats.

A dataset is ``ready`` when it has valid documents and its share of invalid lines
is at most ``PrepareOptions.max_bad_fraction`` (the same threshold preparation
uses, so a ready dataset will not be refused later; bad lines under it are listed
and skipped), and ``rejected`` otherwise, with the reason in ``error``. A rejected
upload's file is deleted: only its report is kept.
"""

from __future__ import annotations

import logging
from typing import Any

from trainer.data.reading import sha256_file
from webapp.datasets.models import Dataset

log = logging.getLogger(__name__)

MAX_BAD_LINES_SHOWN = 50


def _reject(dataset: Dataset, reason: str, stats: dict[str, Any] | None = None) -> None:
    for path in (dataset.partial_path, dataset.file_path):
        path.unlink(missing_ok=True)
    Dataset.objects.filter(pk=dataset.pk, state=Dataset.State.VALIDATING).update(
        state=Dataset.State.REJECTED, error=reason, stats=stats or {}
    )


def bad_line_list(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's examples as one list ``[{kind, line, excerpt}]`` in line order."""
    out = [
        {"kind": kind, "line": e.get("line"), "excerpt": e.get("excerpt", "")}
        for kind, examples in report.get("bad_examples", {}).items()
        for e in examples
    ]
    out.sort(key=lambda e: e["line"] or 0)
    return out[:MAX_BAD_LINES_SHOWN]


def validate_dataset(dataset_id: int) -> str:
    """Check the hash, validate and profile a finished upload; return the new state."""
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is None or dataset.state != Dataset.State.VALIDATING:
        return dataset.state if dataset else "missing"
    source = dataset.partial_path if dataset.partial_path.exists() else dataset.file_path
    if not source.exists():
        _reject(dataset, "the uploaded file is missing on the server")
        return Dataset.State.REJECTED
    actual = sha256_file(source)
    if actual != dataset.sha256:
        _reject(
            dataset, f"sha256 mismatch: the browser sent {dataset.sha256}, stored file is {actual}"
        )
        return Dataset.State.REJECTED
    if source != dataset.file_path:
        source.replace(dataset.file_path)

    from trainer.prepare import PrepareOptions, validate_corpus

    try:
        report = validate_corpus([dataset.file_path], text_field=dataset.text_field).to_dict()
    except Exception as exc:  # an unreadable file is the user's problem, reported on the page
        log.exception("validation of dataset %s failed", dataset_id)
        _reject(dataset, f"cannot read the corpus: {exc}")
        return Dataset.State.REJECTED
    report["bad_lines_shown"] = bad_line_list(report)
    report["sha256"] = actual
    # Server paths stay on the server: the page and the API only need the file name.
    report["files"] = [{"name": dataset.filename, "bytes": f["bytes"]} for f in report["files"]]
    max_bad = PrepareOptions().max_bad_fraction
    if not report["documents"]:
        _reject(dataset, f"no valid documents with a {dataset.text_field!r} text field", report)
        return Dataset.State.REJECTED
    if report["invalid_fraction"] > max_bad:
        _reject(
            dataset,
            f"{report['invalid_total']} bad lines ({report['invalid_fraction']:.1%}) exceed the "
            f"limit of {max_bad:.0%}; see the first ones below",
            report,
        )
        return Dataset.State.REJECTED
    changed = Dataset.objects.filter(pk=dataset.pk, state=Dataset.State.VALIDATING).update(
        state=Dataset.State.READY, stats=report, error=""
    )
    return Dataset.State.READY if changed else Dataset.objects.get(pk=dataset.pk).state
