"""Create a run from a validated form and queue it for a worker (a plain function)."""

from __future__ import annotations

from django.db import transaction

from trainer.config import TrainConfig
from webapp.basemodels.models import BaseModel
from webapp.datasets.models import Dataset
from webapp.runs.models import Run, RunDataset


class LaunchError(ValueError):
    """The chosen objects changed since the form was validated (e.g. a dataset was deleted)."""


def launch_run(
    owner, config: TrainConfig, base_model: BaseModel, datasets: list[tuple[Dataset, float]]
) -> Run:
    """Store the run (full config JSON, base model, dataset rows) and queue it.

    ``config`` must come from ``parse_config`` (RunForm.clean does it); its corpora are the
    ``dataset://<id>`` of ``datasets``, in the same order. The task is sent after commit.
    """
    with transaction.atomic():
        ids = [d.pk for d, _ in datasets]
        # Lock the datasets so a concurrent delete cannot remove one between check and use.
        ready = set(
            Dataset.objects.select_for_update()
            .filter(pk__in=ids, state=Dataset.State.READY)
            .values_list("pk", flat=True)
        )
        missing = [i for i in ids if i not in ready]
        if missing:
            raise LaunchError(f"datasets no longer ready: {', '.join(map(str, missing))}")
        run = Run.objects.create(
            owner=owner,
            name=config.name,
            config=config.model_dump(mode="json"),
            base_model=base_model,
            total_steps=config.resolved_total_steps(),
            state=Run.State.QUEUED,
        )
        RunDataset.objects.bulk_create(
            [RunDataset(run=run, dataset=d, weight=w) for d, w in datasets]
        )
        from worker.control import queue_run

        queue_run(run)
    return run
