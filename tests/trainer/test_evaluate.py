"""trainer.evaluate: val loss and perplexity on a prepared corpus."""

from __future__ import annotations

import itertools
import json
import math
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.trainer.inference_fixtures import write_checkpoint
from trainer.demo import demo_texts, write_jsonl
from trainer.evaluate import evaluate_model, main
from trainer.inference import InferenceError
from trainer.prepare import prepare_corpus
from trainer.shards import PreparedCorpus


@pytest.fixture(scope="module")
def corpus(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    jsonl = write_jsonl(root / "docs.jsonl", itertools.islice(demo_texts(), 300))
    return prepare_corpus([jsonl], tiny_model_dir, root / "out", val_fraction=0.2, workers=1)


@pytest.fixture(scope="module")
def checkpoint(tiny_model_dir, tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("run"), tiny_model_dir)


def test_val_loss_is_the_mean_next_token_loss_over_the_first_windows(tiny_model_dir, corpus):
    result = evaluate_model(tiny_model_dir, corpus, seq_len=32, batches=2, batch_size=3)

    # Independently: six consecutive 33-token windows, each scored by transformers' own loss.
    val = PreparedCorpus(corpus).split("val")
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    losses = []
    with torch.no_grad():
        for w in range(6):
            ids = torch.from_numpy(val[w * 32 : w * 32 + 33].astype(np.int64))[None]
            # transformers shifts labels itself: 33 tokens give 32 predictions.
            losses.append(model(input_ids=ids, labels=ids).loss.item())
    expected = sum(losses) / len(losses)

    assert result["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert result["val_ppl"] == pytest.approx(math.exp(expected), rel=1e-5)
    assert (result["tokens"], result["windows"], result["batches"]) == (192, 6, 2)
    assert result["tokenizer_match"] is True
    assert result["source"] == "base"


def test_a_checkpoint_is_evaluated_at_its_runs_seq_len_and_differs_from_the_base(
    tiny_model_dir, corpus, checkpoint
):
    base = evaluate_model(tiny_model_dir, corpus, seq_len=32, batches=1, batch_size=2)
    trained = evaluate_model(checkpoint, corpus, batches=1, batch_size=2)

    assert trained["seq_len"] == 32  # config.yaml data.seq_len
    assert trained["source"] == "checkpoint"
    assert trained["step"] == 5
    assert trained["val_loss"] != pytest.approx(base["val_loss"], rel=1e-4)


def test_the_cli_prints_one_json_result_line(checkpoint, corpus, capsys):
    status = main(
        ["--model", str(checkpoint), "--corpus", str(corpus), "--batches", "1",
         "--batch-size", "2", "--device", "cpu"]
    )  # fmt: skip

    assert status == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    result = json.loads(line)
    in_process = evaluate_model(checkpoint, corpus, batches=1, batch_size=2, device="cpu")
    assert result["val_loss"] == pytest.approx(in_process["val_loss"], rel=1e-6)
    assert result["seconds"] > 0


def test_it_rejects_a_corpus_prepared_with_another_tokenizer(tiny_model_dir, corpus, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(corpus, other)
    manifest = json.loads((other / "manifest.json").read_text())
    val_file = other / manifest["splits"]["val"]["shards"][0]["file"]
    ids = np.fromfile(val_file, dtype=manifest["dtype"])
    ids[5] = 40_000  # past the tiny model's 512-entry embedding table
    ids.tofile(val_file)

    with pytest.raises(InferenceError, match="token id 40000.*another tokenizer"):
        evaluate_model(tiny_model_dir, other, seq_len=32, batches=1, batch_size=1)


def test_it_rejects_a_val_split_too_short_for_one_window(tiny_model_dir, corpus, tmp_path):
    short = tmp_path / "short"
    shutil.copytree(corpus, short)
    manifest = json.loads((short / "manifest.json").read_text())
    shard = manifest["splits"]["val"]["shards"] = manifest["splits"]["val"]["shards"][:1]
    shard[0]["tokens"] = manifest["splits"]["val"]["tokens"] = 20
    with (short / shard[0]["file"]).open("r+b") as f:
        f.truncate(20 * np.dtype(manifest["dtype"]).itemsize)
    (short / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(InferenceError, match=r"val split has 20 tokens.*--seq-len"):
        evaluate_model(tiny_model_dir, short, seq_len=32, batches=1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batches": 0}, "batches"),
        ({"batch_size": 0}, "batch_size"),
        ({"seq_len": 0}, "seq_len"),
        ({"seq_len": 4096}, "seq_len: 4096 exceeds"),
    ],
)
def test_it_rejects_out_of_range_numbers(tiny_model_dir, corpus, kwargs, field):
    with pytest.raises(InferenceError, match=field):
        evaluate_model(tiny_model_dir, corpus, **kwargs)


def test_it_rejects_a_folder_that_is_not_a_prepared_corpus(tiny_model_dir, tmp_path):
    with pytest.raises(InferenceError, match="corpus: no manifest.json"):
        evaluate_model(tiny_model_dir, tmp_path)
