"""Resolve a run's ``dataset://<id>`` corpora into prepared directories before launch.

Each dataset is prepared with ``trainer.prepare.prepare_corpus`` for the run's tokenizer
into ``settings.PREPARED_ROOT`` (a cache keyed by content, tokenizer and options, so a
second run on the same data reuses it at once). Progress goes to ``Run.progress`` and
to the run page, a few times a second at most.
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from trainer.config import DATASET_PLACEHOLDER
from trainer.prepare import CorpusRejected, EmptyCorpusError, prepare_corpus
from webapp.datasets.models import Dataset
from webapp.runs.models import Run
from worker.push import push_progress

DATASET_URI = re.compile(r"^dataset://(\d{1,18})$")
PROGRESS_INTERVAL = 0.5  # seconds between progress writes (stage changes always written)
# Below this size one process tokenizes faster than starting a pool of them.
SMALL_CORPUS_BYTES = 16 * 1024 * 1024


class PreparationError(ValueError):
    """A corpus that cannot be used; the message names the config field."""


def _dataset_for(run: Run, uri: str, field: str) -> Dataset:
    """The dataset a placeholder names, if the run's owner may use it and it is ready."""
    match = DATASET_URI.match(uri)
    if not match:
        raise PreparationError(f"{field}: expected dataset://<id>, got {uri[:100]!r}")
    dataset = Dataset.objects.filter(pk=int(match.group(1))).first()
    # Another user's dataset is reported as missing, like a 404 in the web app.
    if dataset is None or (dataset.owner_id != run.owner_id and not run.owner.is_staff):
        raise PreparationError(f"{field}: dataset {match.group(1)} does not exist")
    if dataset.state != Dataset.State.READY:
        raise PreparationError(f"{field}: dataset {dataset.name!r} is {dataset.state}, not ready")
    if not dataset.file_path.is_file():
        raise PreparationError(f"{field}: the file of dataset {dataset.name!r} is missing")
    return dataset


class _Progress:
    """prepare_corpus's progress callback -> Run.progress (+ heartbeat) at a bounded rate."""

    def __init__(self, run_id: int, index: int, count: int, name: str) -> None:
        self.run_id, self.index, self.count, self.name = run_id, index, count, name
        self.last_write = 0.0
        self.last_stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage == self.last_stage and now - self.last_write < PROGRESS_INTERVAL:
            return
        self.last_write, self.last_stage = now, stage
        self.write(stage, done, total)

    def write(self, stage: str, done: int, total: int) -> None:
        from django.utils import timezone

        progress = {
            "stage": stage,
            "corpus": self.index + 1,
            "corpora": self.count,
            "name": self.name,
            "bytes_done": done,
            "bytes_total": total,
            "fraction": round(done / total, 4) if total else 1.0,
        }
        Run.objects.filter(pk=self.run_id).update(progress=progress, heartbeat_at=timezone.now())
        push_progress(self.run_id)


def resolve_corpora(run: Run) -> dict[str, Any]:
    """The run's config with every corpus path replaced by a prepared directory.

    Placeholders are prepared (or found in the cache); any other path must already be
    a prepared corpus under PREPARED_ROOT: a path typed in a browser never reaches
    the trainer unchecked. Raises :class:`PreparationError` naming the field.
    """
    config = copy.deepcopy(run.config)
    corpora = (config.get("data") or {}).get("corpora") or []
    tokenizer = (config.get("model") or {}).get("path") or ""
    prepared_root = Path(settings.PREPARED_ROOT).resolve()
    for i, corpus in enumerate(corpora):
        field = f"data.corpora.{i}.path"
        path = str(corpus.get("path", ""))
        if not path.startswith(DATASET_PLACEHOLDER):
            resolved = Path(path).resolve()
            if (
                not resolved.is_relative_to(prepared_root)
                or not (resolved / "manifest.json").is_file()
            ):
                raise PreparationError(f"{field}: not a prepared corpus of this server")
            continue
        dataset = _dataset_for(run, path, field)
        progress = _Progress(run.pk, i, len(corpora), dataset.name)
        progress.write("start", 0, dataset.size_bytes)
        try:
            out = prepare_corpus(
                [dataset.file_path],
                tokenizer,
                prepared_root,
                text_field=dataset.text_field,
                workers=1 if dataset.file_path.stat().st_size < SMALL_CORPUS_BYTES else None,
                progress=progress,
            )
        except (CorpusRejected, EmptyCorpusError) as exc:
            raise PreparationError(f"{field}: dataset {dataset.name!r}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise PreparationError(f"{field}: cannot prepare {dataset.name!r}: {exc}") from None
        corpus["path"] = str(out)
        corpus.setdefault("name", dataset.name)
        if not corpus["name"]:
            corpus["name"] = dataset.name
        progress.write("done", dataset.size_bytes, dataset.size_bytes)
    return config
