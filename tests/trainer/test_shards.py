"""trainer.shards: the prepared-corpus reader, on hand-written manifests and shards."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from trainer.shards import (
    CorpusFormatError,
    PreparedCorpus,
    check_same_tokenizer,
    tokenizer_fingerprint,
)


def write_corpus(root, dtype="uint16", train_shards=((0, 5), (5, 3), (8, 0), (8, 4)), val=3):
    """A corpus whose train tokens are 0..N-1 split over the given (start, count) shards."""
    root.mkdir(parents=True, exist_ok=True)
    shards = []
    for k, (start, count) in enumerate(train_shards):
        name = f"train-{k:05d}.bin"
        np.arange(start, start + count, dtype=dtype).tofile(root / name)
        shards.append({"file": name, "tokens": count})
    np.arange(100, 100 + val, dtype=dtype).tofile(root / "val-00000.bin")
    manifest = {
        "version": 1,
        "key": "k",
        "dtype": dtype,
        "tokenizer": {"name_or_path": "x", "fingerprint": "f"},
        "splits": {
            "train": {"tokens": sum(c for _, c in train_shards), "shards": shards},
            "val": {"tokens": val, "shards": [{"file": "val-00000.bin", "tokens": val}]},
        },
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_slices_cross_shard_boundaries_and_skip_empty_shards(tmp_path):
    train = PreparedCorpus(write_corpus(tmp_path / "c")).split("train")
    expected = np.arange(12)
    assert len(train) == 12
    for i in range(13):
        for j in range(i, 13):
            np.testing.assert_array_equal(train[i:j], expected[i:j])
    np.testing.assert_array_equal(train[-3:], expected[-3:])
    np.testing.assert_array_equal(train[1:11:3], expected[1:11:3])
    assert train[7] == 7 and train[-1] == 11
    assert train[3:9].dtype == np.uint16
    with pytest.raises(IndexError):
        train[12]


def test_it_reads_uint32_val_split_and_manifest(tmp_path):
    corpus = PreparedCorpus(write_corpus(tmp_path / "c", dtype="uint32", val=4))
    val = corpus.split("val")
    assert corpus.manifest["key"] == "k"
    assert corpus.num_tokens("val") == 4
    assert val[:].dtype == np.uint32
    assert val[:].tolist() == [100, 101, 102, 103]


def test_it_rejects_a_truncated_shard_and_unknown_split(tmp_path):
    root = write_corpus(tmp_path / "c")
    with (root / "train-00001.bin").open("r+b") as f:
        f.truncate(2)
    corpus = PreparedCorpus(root)
    with pytest.raises(CorpusFormatError, match="train-00001.bin"):
        corpus.split("train")
    with pytest.raises(ValueError, match="split must be one of"):
        corpus.split("test")


def test_it_rejects_a_directory_without_manifest(tmp_path):
    with pytest.raises(CorpusFormatError, match="no manifest.json"):
        PreparedCorpus(tmp_path)


def test_it_rejects_a_shard_name_outside_the_directory(tmp_path):
    root = write_corpus(tmp_path / "c")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["splits"]["val"]["shards"][0]["file"] = "../val-00000.bin"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusFormatError, match="bad shard file name"):
        PreparedCorpus(root).split("val")


def test_same_tokenizer_in_two_folders_has_one_fingerprint(tmp_path):
    from trainer.demo import build_tokenizer

    a = tmp_path / "a"
    tok = build_tokenizer(a, ["hello world", "hello there", "general kenobi"] * 20, vocab_size=300)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    (b / "config.json").write_text("{}")  # not a tokenizer file: ignored
    fp = tokenizer_fingerprint(a)
    assert len(fp) == 64
    assert tokenizer_fingerprint(str(b)) == fp
    assert tokenizer_fingerprint(tok) == fp

    data = json.loads((b / "tokenizer.json").read_text())
    data["added_tokens"][0]["content"] = "<other>"
    (b / "tokenizer.json").write_text(json.dumps(data))
    assert tokenizer_fingerprint(b) != fp


def test_fingerprint_of_a_folder_without_tokenizer_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        tokenizer_fingerprint(tmp_path)


def test_corpora_to_mix_must_share_a_tokenizer(tmp_path):
    a = PreparedCorpus(write_corpus(tmp_path / "a"))
    b = PreparedCorpus(write_corpus(tmp_path / "b"))
    assert check_same_tokenizer([a, b])["fingerprint"] == "f"
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    manifest["tokenizer"]["fingerprint"] = "other"
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusFormatError, match="fingerprint 'other' differs"):
        check_same_tokenizer([a, PreparedCorpus(tmp_path / "b")])
