"""Before launch: dataset placeholders checked and prepared; the host's GPUs checked."""

from __future__ import annotations

import pytest

from trainer.config import parse_config
from webapp.datasets.models import Dataset
from worker.hosts import HostError, nproc_for
from worker.preparation import PreparationError, resolve_corpora

from .helpers import make_run

pytestmark = pytest.mark.django_db


def _config(path: str) -> dict:
    return {"model": {"path": "/m"}, "data": {"corpora": [{"path": path}]}}


def _dataset(owner, state=Dataset.State.READY) -> Dataset:
    return Dataset.objects.create(
        owner=owner, name="d", filename="c.jsonl", size_bytes=1, sha256="0" * 64, state=state
    )


def test_another_users_dataset_is_reported_as_missing(alice, bob):
    ds = _dataset(bob)
    run = make_run(alice, _config(f"dataset://{ds.pk}"))
    with pytest.raises(
        PreparationError, match=rf"data\.corpora\.0\.path: dataset {ds.pk} does not exist"
    ):
        resolve_corpora(run)


def test_a_dataset_still_validating_is_refused(alice):
    ds = _dataset(alice, Dataset.State.VALIDATING)
    run = make_run(alice, _config(f"dataset://{ds.pk}"))
    with pytest.raises(PreparationError, match="is validating, not ready"):
        resolve_corpora(run)


@pytest.mark.parametrize("path", ["dataset://1/../../x", "dataset://abc", "/etc", "../prepared"])
def test_paths_that_are_not_datasets_or_prepared_corpora_of_this_server_are_refused(alice, path):
    run = make_run(alice, _config(path))
    with pytest.raises(PreparationError, match=r"data\.corpora\.0\.path"):
        resolve_corpora(run)


def test_a_corpus_already_prepared_on_this_server_is_used_as_is(alice, settings):
    corpus = settings.PREPARED_ROOT / "abc"
    corpus.mkdir(parents=True)
    (corpus / "manifest.json").write_text("{}")
    run = make_run(alice, _config(str(corpus)))
    assert resolve_corpora(run)["data"]["corpora"][0]["path"] == str(corpus)


def _train(**parallel) -> object:
    cfg = _config("/p")
    cfg["parallel"] = parallel
    return parse_config(cfg)


def test_nproc_is_checked_against_the_hosts_gpus():
    assert nproc_for(_train(nproc_per_node=2, device="cpu"), 0) == 2
    assert nproc_for(_train(nproc_per_node=4), 8) == 4
    with pytest.raises(HostError, match="parallel.nproc_per_node: 4 processes but this host has 2"):
        nproc_for(_train(nproc_per_node=4), 2)
    with pytest.raises(HostError, match="parallel.device"):
        nproc_for(_train(device="cuda"), 0)
    with pytest.raises(HostError, match="parallel.nnodes"):
        nproc_for(_train(nnodes=2), 8)
