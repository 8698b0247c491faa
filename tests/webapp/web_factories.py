"""Rows for the web tests, made directly (no upload, no model loading) so tests stay fast."""

from __future__ import annotations

from typing import Any

from webapp.basemodels.models import BaseModel
from webapp.datasets.models import Dataset
from webapp.runs.models import Run, RunDataset


def make_dataset(owner, name: str = "corpus", state: str = Dataset.State.READY) -> Dataset:
    return Dataset.objects.create(
        owner=owner,
        name=name,
        filename=f"{name}.jsonl",
        size_bytes=100,
        received_bytes=100,
        sha256="0" * 64,
        state=state,
        stats={"documents": 10, "estimated_tokens": 250},
    )


def make_model(owner, name: str = "tiny", path: str | None = None) -> BaseModel:
    return BaseModel.objects.create(
        owner=owner,
        name=name,
        source=path or f"/models/{owner.username}/{name}",
        path=path or f"/models/{owner.username}/{name}",
        architecture="LlamaForCausalLM",
        num_params=1000,
    )


def run_config(model: BaseModel, datasets: list[Dataset], **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "run",
        "model": {"path": model.path},
        "data": {"corpora": [{"path": f"dataset://{d.pk}", "weight": 1.0} for d in datasets]},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    return config


def make_run(owner, name: str = "run", state: str = Run.State.QUEUED, **fields: Any) -> Run:
    model = fields.pop("base_model", None) or make_model(owner, name=f"m-{name}")
    datasets = fields.pop("datasets", None)
    if datasets is None:
        datasets = [make_dataset(owner, name=f"d-{name}")]
    config = run_config(model, datasets, name=name)
    run = Run.objects.create(
        owner=owner, name=name, config=config, base_model=model, state=state, **fields
    )
    for d in datasets:
        RunDataset.objects.create(run=run, dataset=d)
    return run
