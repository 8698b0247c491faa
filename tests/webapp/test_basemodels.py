"""Base models: registration of a good and a bad source, the demo command, deletion."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from webapp.basemodels.models import BaseModel

pytestmark = pytest.mark.django_db


def test_registering_a_local_model_shows_its_architecture_and_size(alice_client, tiny_model_dir):
    response = alice_client.post("/models/", {"name": "tiny", "source": str(tiny_model_dir)})
    assert response.status_code == 302
    model = BaseModel.objects.get(name="tiny")
    assert model.architecture == "LlamaForCausalLM"
    assert model.vocab_size == 512 and model.max_context == 2048
    # 2 layers of hidden 64: embeddings + lm_head alone are 2 * 512 * 64 parameters.
    assert 2 * 512 * 64 < model.num_params < 1_000_000
    page = alice_client.get(response["Location"]).content.decode()
    assert "LlamaForCausalLM" in page and str(model.num_params) in page


def test_a_directory_without_config_is_refused_with_the_reason(alice_client, tmp_path):
    response = alice_client.post("/models/", {"name": "x", "source": str(tmp_path)})
    assert response.status_code == 400
    assert "has no config.json" in response.content.decode()
    assert not BaseModel.objects.exists()


def test_a_model_whose_tokenizer_does_not_load_is_refused(alice_client, tiny_model_dir, tmp_path):
    broken = tmp_path / "no-tokenizer"
    broken.mkdir()
    (broken / "config.json").write_bytes((tiny_model_dir / "config.json").read_bytes())
    response = alice_client.post("/models/", {"source": str(broken)})
    assert response.status_code == 400
    assert "tokenizer does not load" in response.content.decode()


def test_a_hub_id_missing_from_the_local_cache_is_refused_without_downloading(
    alice_client, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    response = alice_client.post("/models/", {"source": "someorg/not-cached-model"})
    assert response.status_code == 400
    assert "not in the local Hugging Face cache" in response.content.decode()


def test_relative_paths_and_odd_sources_are_refused(alice_client):
    for source in ("./model", "a b c", "../../etc"):
        response = alice_client.post("/models/", {"source": source})
        assert response.status_code == 400, source
    assert not BaseModel.objects.exists()


def test_the_demo_command_builds_and_registers_a_model_and_corpus(
    alice, tmp_path, tiny_model_dir, monkeypatch
):
    import webapp.basemodels.management.commands.create_demo_model as command

    # Reuse the session's tiny model instead of training another tokenizer (same builder).
    def build_copy(out):
        import shutil

        shutil.copytree(tiny_model_dir, out)
        return out

    monkeypatch.setattr(command, "build_tiny_model", build_copy)
    call_command(
        "create_demo_model", owner="alice", out=str(tmp_path / "demo"), with_dataset=True,
        documents=50,
    )  # fmt: skip
    model = BaseModel.objects.get(owner=alice)
    assert model.architecture == "LlamaForCausalLM"
    assert model.path == str((tmp_path / "demo").resolve())
    dataset = alice.dataset_set.get()
    assert dataset.state == "ready", dataset.error
    assert dataset.stats["documents"] == 50
    # Again: the same registration is kept, nothing is rebuilt.
    call_command("create_demo_model", owner="alice", out=str(tmp_path / "demo"))
    assert BaseModel.objects.get(owner=alice) == model


def test_a_model_used_by_a_run_cannot_be_removed(alice_client, alice, tiny_model_dir):
    from webapp.runs.models import Run

    alice_client.post("/models/", {"name": "tiny", "source": str(tiny_model_dir)})
    model = BaseModel.objects.get()
    Run.objects.create(owner=alice, name="r", config={}, base_model=model)
    response = alice_client.post(f"/models/{model.pk}/delete/", follow=True)
    assert "is used by run(s)" in response.content.decode()
    assert BaseModel.objects.filter(pk=model.pk).exists()
