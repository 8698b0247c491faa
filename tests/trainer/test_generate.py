"""trainer.generate: sampled and greedy text from a base model or a checkpoint."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.trainer.inference_fixtures import perturbed_model, write_checkpoint
from trainer.generate import generate_text, main
from trainer.inference import InferenceError, load_model

PROMPT = "Return the number of"


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    return load_model(tiny_model_dir, device="cpu")


def _greedy(model, tokenizer, prompt: str, n: int) -> str:
    """Argmax decoding without a KV cache, one full forward per token."""
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    new: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(input_ids=ids).logits[0, -1].argmax())
            if nxt == tokenizer.eos_token_id:
                break
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return tokenizer.decode(new, skip_special_tokens=True)


def test_temperature_zero_is_greedy_decoding(base):
    result = generate_text(base, PROMPT, temperature=0, max_new_tokens=12)

    assert result["text"] == _greedy(base.model, base.tokenizer, PROMPT, 12)
    assert result["text"]
    assert result["finish_reason"] in ("eos", "length")
    assert result["new_tokens"] == 12 or result["finish_reason"] == "eos"


def test_the_models_own_generation_defaults_do_not_change_the_recipe(base):
    expected = _greedy(base.model, base.tokenizer, PROMPT, 12)
    saved = base.model.generation_config
    saved.repetition_penalty = 5.0  # as a base model's generation_config.json might set
    try:
        result = generate_text(base, PROMPT, temperature=0, max_new_tokens=12)
    finally:
        saved.repetition_penalty = 1.0

    assert result["text"] == expected
    assert base.model.generation_config is saved


def test_the_same_seed_gives_the_same_sample_and_leaves_the_global_rng_alone(base):
    rng_before = torch.get_rng_state()

    a = generate_text(base, PROMPT, temperature=1.0, top_p=1.0, seed=11, max_new_tokens=16)
    b = generate_text(base, PROMPT, temperature=1.0, top_p=1.0, seed=11, max_new_tokens=16)
    c = generate_text(base, PROMPT, temperature=1.0, top_p=1.0, seed=12, max_new_tokens=16)

    assert a["text"] == b["text"]
    assert a["text"] != c["text"]
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_a_tiny_top_p_keeps_only_the_most_likely_token(base):
    sampled = generate_text(base, PROMPT, temperature=1.0, top_p=1e-6, seed=3, max_new_tokens=10)
    greedy = generate_text(base, PROMPT, temperature=0, max_new_tokens=10)

    assert sampled["text"] == greedy["text"]


def test_without_a_seed_it_reports_the_seed_it_drew(base):
    first = generate_text(base, PROMPT, temperature=1.0, max_new_tokens=8)
    again = generate_text(base, PROMPT, temperature=1.0, max_new_tokens=8, seed=first["seed"])

    assert again["text"] == first["text"]


def test_it_generates_from_a_checkpoint(tiny_model_dir, tmp_path):
    ckpt = write_checkpoint(tmp_path / "run", tiny_model_dir, step=7, noise=0.05)
    trained = perturbed_model(tiny_model_dir, noise=0.05)

    result = generate_text(ckpt, PROMPT, temperature=0, max_new_tokens=10, device="cpu")

    assert (result["source"], result["step"]) == ("checkpoint", 7)
    tokenizer = load_model(tiny_model_dir, device="cpu").tokenizer
    assert result["text"] == _greedy(trained, tokenizer, PROMPT, 10)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": "   "}, "prompt: must not be empty"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 6.0}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 100_000}, "max_new_tokens"),
        ({"seed": -1}, "seed"),
    ],
)
def test_it_rejects_bad_arguments_before_loading_anything(kwargs, field):
    args = {"prompt": PROMPT, **kwargs}
    # The model path does not exist: the argument check must come first.
    with pytest.raises(InferenceError, match=field):
        generate_text("/nonexistent/model", args.pop("prompt"), **args)


def test_it_rejects_a_request_longer_than_the_context(base):
    with pytest.raises(InferenceError, match="exceed the model's context of 2048"):
        generate_text(base, PROMPT, max_new_tokens=4096)


def test_the_cli_prints_the_text_as_one_json_line(tiny_model_dir, base, capsys):
    status = main(
        ["--model", str(tiny_model_dir), "--prompt", PROMPT, "--temperature", "0",
         "--max-new-tokens", "6", "--device", "cpu"]
    )  # fmt: skip

    assert status == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    result = json.loads(line)
    assert result["text"] == _greedy(base.model, base.tokenizer, PROMPT, 6)
    assert result["source"] == "base"


def test_the_cli_reports_a_bad_argument_as_a_json_error_and_exit_status_2(capsys):
    status = main(["--model", "/nonexistent", "--prompt", PROMPT, "--top-p", "0"])

    assert status == 2
    out = capsys.readouterr()
    assert "top_p" in json.loads(out.out.strip().splitlines()[-1])["error"]
    assert "top_p" in out.err
