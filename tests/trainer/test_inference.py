"""trainer.inference: loading checkpoints, exports and base models in one process."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.trainer.inference_fixtures import perturbed_model, write_checkpoint
from trainer.inference import InferenceError, find_source, load_model, pick_device, pick_dtype


@pytest.fixture(scope="module")
def checkpoint(tiny_model_dir, tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("run"), tiny_model_dir, step=5)


def _modified_base(tiny_model_dir, tmp_path, **changes):
    """A copy of the tiny model whose config.json has ``changes`` (no weights needed)."""
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    cfg = json.loads((base / "config.json").read_text())
    cfg.update(changes)
    (base / "config.json").write_text(json.dumps(cfg))
    return base


def test_it_loads_the_checkpoint_weights_not_the_base_weights(checkpoint, tiny_model_dir):
    loaded = load_model(checkpoint, device="cpu")
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    saved = perturbed_model(tiny_model_dir)  # what write_checkpoint saved (same seed)

    assert loaded.source == "checkpoint"
    assert loaded.step == 5
    assert loaded.base_model == str(tiny_model_dir)
    assert loaded.run_config.data.seq_len == 32
    assert not loaded.model.training
    got = loaded.model.state_dict()
    for name, tensor in saved.state_dict().items():
        assert torch.equal(got[name], tensor), name
        assert not torch.equal(got[name], base.state_dict()[name]), name


def test_checkpoint_logits_match_the_model_it_was_saved_from(checkpoint, tiny_model_dir):
    reference = perturbed_model(tiny_model_dir)
    ids = torch.tensor([[5, 17, 42, 99, 3, 250]])

    loaded = load_model(checkpoint, device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, reference(ids).logits)


def test_a_checkpoint_keeps_the_base_models_generation_config(tiny_model_dir, tmp_path):
    base = _modified_base(tiny_model_dir, tmp_path)
    gen = json.loads((base / "generation_config.json").read_text())
    (base / "generation_config.json").write_text(json.dumps({**gen, "eos_token_id": [2, 9]}))
    ckpt = write_checkpoint(tmp_path / "run", base)

    loaded = load_model(ckpt, device="cpu")

    assert loaded.model.generation_config.eos_token_id == [2, 9]


def test_it_loads_a_tied_lm_head_from_a_checkpoint_that_stores_only_the_embeddings(
    tiny_model_dir, tmp_path
):
    base = _modified_base(tiny_model_dir, tmp_path, tie_word_embeddings=True)
    ckpt = write_checkpoint(tmp_path / "run", base, drop_keys=["lm_head.weight"])

    loaded = load_model(ckpt, device="cpu")

    model = loaded.model
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert not torch.equal(model.model.embed_tokens.weight, plain.model.embed_tokens.weight)


def test_it_rejects_a_checkpoint_without_metadata(checkpoint, tmp_path):
    broken = tmp_path / "run" / "checkpoints" / "step-000009"
    shutil.copytree(checkpoint, broken)
    (broken / ".metadata").unlink()

    with pytest.raises(InferenceError, match=r"no \.metadata"):
        load_model(broken, device="cpu")


def test_it_rejects_a_checkpoint_without_config_yaml(tiny_model_dir, tmp_path):
    ckpt = write_checkpoint(tmp_path / "run", tiny_model_dir, with_config=False)

    with pytest.raises(InferenceError, match=r"no config\.yaml"):
        load_model(ckpt, device="cpu")


def test_it_rejects_a_checkpoint_of_a_differently_shaped_model(
    checkpoint, tiny_model_dir, tmp_path
):
    # The run's config.yaml now names a base model with one layer fewer.
    run = tmp_path / "run"
    shutil.copytree(checkpoint.parent.parent, run)
    base = _modified_base(tiny_model_dir, tmp_path, num_hidden_layers=1)
    config = (run / "config.yaml").read_text().replace(str(tiny_model_dir), str(base))
    (run / "config.yaml").write_text(config)

    with pytest.raises(InferenceError, match=r"does not match the base model.*unknown weights"):
        load_model(run / "checkpoints" / checkpoint.name, device="cpu")


def test_it_rejects_a_checkpoint_missing_weights(tiny_model_dir, tmp_path):
    ckpt = write_checkpoint(tmp_path / "run", tiny_model_dir, drop_keys=["lm_head.weight"])

    with pytest.raises(InferenceError, match=r"missing 1 weights.*lm_head\.weight"):
        load_model(ckpt, device="cpu")


def test_it_tells_paths_apart(checkpoint, tiny_model_dir, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()

    assert find_source(checkpoint) == "checkpoint"
    assert find_source(tiny_model_dir) == "base"
    with pytest.raises(InferenceError, match="does not exist"):
        find_source(tmp_path / "nowhere")
    with pytest.raises(InferenceError, match="is a file"):
        find_source(tmp_path / "file.txt")
    with pytest.raises(InferenceError, match="neither a checkpoint"):
        find_source(tmp_path / "empty")
    with pytest.raises(InferenceError, match=rf"run directory.*e\.g\. .*{checkpoint.name}"):
        find_source(checkpoint.parent.parent)


def test_a_hub_id_not_in_the_local_cache_is_a_clear_error():
    with pytest.raises(InferenceError, match="local cache"):
        load_model("no-such-org/no-such-model-xyz", device="cpu")


def test_it_loads_a_base_model_for_inference(tiny_model_dir):
    loaded = load_model(tiny_model_dir, device="cpu")

    assert loaded.source == "base"
    assert loaded.step is None
    assert loaded.dtype == torch.float32
    assert loaded.tokenizer.eos_token == "</s>"


def test_device_and_dtype_arguments_are_validated():
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(InferenceError, match="device"):
        pick_device("tpu")
    with pytest.raises(InferenceError, match="device"):
        pick_device("cuda:x")
    assert pick_dtype("auto", torch.device("cpu"), torch.bfloat16) == torch.float32
    assert pick_dtype("store", torch.device("cpu"), torch.bfloat16) == torch.bfloat16
    with pytest.raises(InferenceError, match="dtype"):
        pick_dtype("int8", torch.device("cpu"))
