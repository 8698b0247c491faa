"""trainer.prepare: JSONL -> cleaned, deduplicated, tokenized, packed shards with a manifest."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import shutil

import numpy as np
import pytest

from trainer.data.cleaning import clean_text
from trainer.data.packing import ShardWriter
from trainer.data.reading import iter_line_chunks
from trainer.data.tokenize import TokenizerSpec
from trainer.demo import build_tokenizer, demo_texts
from trainer.prepare import CorpusRejected, EmptyCorpusError, PrepareOptions, prepare_corpus
from trainer.shards import PreparedCorpus


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """A byte-level BPE tokenizer (vocab 400) trained here with `tokenizers`; no BOS added."""
    out = tmp_path_factory.mktemp("tok")
    build_tokenizer(out, itertools.islice(demo_texts(), 300), vocab_size=400)
    return out


@pytest.fixture(scope="session")
def bos_tokenizer_dir(tmp_path_factory):
    """The same kind of tokenizer, but one whose post-processor puts <s> first (like Llama)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tok-bos")
    tok = build_tokenizer(out, itertools.islice(demo_texts(), 300), vocab_size=400)
    backend = tok.backend_tokenizer
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(str(out))
    return out


def load_tok(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def write_lines(path, lines: list[bytes | str]):
    with open(path, "wb") as f:
        for line in lines:
            f.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return path


def docs(n: int, start: int = 0) -> list[str]:
    """Distinct documents with a little variety (non-ASCII, newlines)."""
    return [
        f"Document {i}: caf\u00e9 number {i} says hello.\nSecond line {i * 7}."
        for i in range(start, start + n)
    ]


def jsonl(texts, field="text") -> list[str]:
    return [json.dumps({field: t, "id": i}) for i, t in enumerate(texts)]


def segments(tokens: np.ndarray, eos: int) -> list[list[int]]:
    """Split a token stream after each EOS; every document must end with one."""
    out, cur = [], []
    for t in tokens.tolist():
        cur.append(t)
        if t == eos:
            out.append(cur)
            cur = []
    assert cur == [], "token stream does not end with EOS"
    return out


def test_packed_tokens_are_each_document_encoded_then_eos(tmp_path, tokenizer_dir):
    texts = docs(40)
    src = write_lines(tmp_path / "a.jsonl", jsonl(texts))
    out = prepare_corpus([src], tokenizer_dir, tmp_path / "out", val_fraction=0.0, workers=1)
    corpus = PreparedCorpus(out)
    tok = load_tok(tokenizer_dir)
    expected = []
    for t in texts:
        expected += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    train = corpus.split("train")
    assert train[:].tolist() == expected
    assert len(corpus.split("val")) == 0
    decoded = [tok.decode(seg[:-1]) for seg in segments(train[:], tok.eos_token_id)]
    assert decoded == texts
    m = corpus.manifest
    assert m["dtype"] == "uint16"
    assert m["tokenizer"]["eos_token_id"] == tok.eos_token_id
    assert m["tokenizer"]["add_bos"] is False
    assert m["counts"]["kept"] == 40 and m["counts"]["documents_read"] == 40
    assert m["inputs"][0]["sha256"] and m["inputs"][0]["bytes"] == src.stat().st_size
    assert m["splits"]["train"]["tokens"] == len(expected)


def test_bos_precedes_each_document_when_the_tokenizer_adds_one(tmp_path, bos_tokenizer_dir):
    texts = docs(5)
    src = write_lines(tmp_path / "a.jsonl", jsonl(texts))
    out = prepare_corpus([src], bos_tokenizer_dir, tmp_path / "out", val_fraction=0.0, workers=1)
    corpus = PreparedCorpus(out)
    tok = load_tok(bos_tokenizer_dir)
    assert corpus.manifest["tokenizer"]["add_bos"] is True
    segs = segments(corpus.split("train")[:], tok.eos_token_id)
    assert len(segs) == 5
    for seg, text in zip(segs, texts, strict=True):
        assert seg[0] == tok.bos_token_id
        assert seg[1:-1] == tok(text, add_special_tokens=False)["input_ids"]


def test_exact_duplicates_are_removed_across_files_and_counted(tmp_path, tokenizer_dir):
    a = write_lines(tmp_path / "a.jsonl", jsonl(docs(10) + docs(2)))  # 2 repeats inside a
    # b repeats 3 docs of a, one of them differing only by NFC form and a control character.
    nfd = docs(1, start=3)[0].replace("\u00e9", "e\u0301") + "\x07"
    b = write_lines(tmp_path / "b.jsonl", jsonl(docs(2, start=5) + [nfd] + docs(4, start=10)))
    out = prepare_corpus([a, b], tokenizer_dir, tmp_path / "out", workers=1)
    counts = PreparedCorpus(out).manifest["counts"]
    assert counts["documents_read"] == 19
    assert counts["duplicates"] == 5
    assert counts["kept"] == 14
    assert counts["train_documents"] + counts["val_documents"] == 14


def test_bad_lines_are_skipped_under_the_threshold_and_reported(tmp_path, tokenizer_dir):
    lines = jsonl(docs(60))
    lines.insert(10, "{broken json")
    lines.insert(30, '{"text": 5}')
    src = write_lines(tmp_path / "a.jsonl", lines)
    out = prepare_corpus([src], tokenizer_dir, tmp_path / "out", max_bad_fraction=0.05, workers=1)
    m = PreparedCorpus(out).manifest
    assert m["counts"]["bad"] == {"invalid_json": 1, "not_string": 1}
    assert m["counts"]["kept"] == 60
    assert m["report"]["bad_examples"]["invalid_json"][0]["line"] == 11
    assert m["report"]["bad_examples"]["not_string"][0]["line"] == 31


def test_it_rejects_a_corpus_over_the_bad_fraction_and_leaves_nothing(tmp_path, tokenizer_dir):
    lines = jsonl(docs(20)) + ["not json"] * 3
    src = write_lines(tmp_path / "a.jsonl", lines)
    root = tmp_path / "out"
    with pytest.raises(CorpusRejected) as info:
        prepare_corpus([src], tokenizer_dir, root, max_bad_fraction=0.1, workers=1)
    report = info.value.report
    assert report.bad == {"invalid_json": 3}
    assert [e["line"] for e in report.bad_examples["invalid_json"]] == [21, 22, 23]
    assert "3 of 23 lines are bad" in str(info.value)
    assert list(root.iterdir()) == []
    # The same corpus passes with a looser threshold.
    assert prepare_corpus([src], tokenizer_dir, root, max_bad_fraction=0.2, workers=1).is_dir()


def test_too_short_documents_are_filtered_without_counting_toward_rejection(
    tmp_path, tokenizer_dir
):
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(5) + ["short", "tiny", "x y"]))
    out = prepare_corpus([src], tokenizer_dir, tmp_path / "out", min_chars=20, workers=1)
    counts = PreparedCorpus(out).manifest["counts"]
    assert counts["bad"] == {"too_short": 3}
    assert counts["kept"] == 5


def test_an_empty_corpus_is_a_clear_error(tmp_path, tokenizer_dir):
    blank = write_lines(tmp_path / "blank.jsonl", ["", "   "])
    with pytest.raises(EmptyCorpusError, match="no non-blank lines"):
        prepare_corpus([blank], tokenizer_dir, tmp_path / "out", workers=1)
    short = write_lines(tmp_path / "short.jsonl", jsonl(["ab", "cd"]))
    with pytest.raises(EmptyCorpusError, match="no document left"):
        prepare_corpus([short], tokenizer_dir, tmp_path / "out", min_chars=10, workers=1)
    assert list((tmp_path / "out").iterdir()) == []


def test_gzip_and_zstd_inputs_give_the_same_tokens_as_plain(tmp_path, tokenizer_dir):
    import zstandard

    plain = write_lines(tmp_path / "a.jsonl", jsonl(docs(50)))
    data = plain.read_bytes()
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    zst = tmp_path / "a.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(data))
    arrays = []
    for i, src in enumerate([plain, gz, zst]):
        out = prepare_corpus([src], tokenizer_dir, tmp_path / f"out{i}", workers=1)
        corpus = PreparedCorpus(out)
        assert corpus.manifest["counts"]["kept"] == 50
        arrays.append((corpus.split("train")[:], corpus.split("val")[:]))
    for train, val in arrays[1:]:
        np.testing.assert_array_equal(train, arrays[0][0])
        np.testing.assert_array_equal(val, arrays[0][1])


def test_preparing_again_reuses_the_result(tmp_path, tokenizer_dir):
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(30)))
    root = tmp_path / "out"
    first = prepare_corpus([src], tokenizer_dir, root, workers=1)
    stamp = (first / "manifest.json").stat().st_mtime_ns
    stages = []
    # The same tokenizer copied elsewhere is the same tokenizer.
    copy = tmp_path / "tok-copy"
    shutil.copytree(tokenizer_dir, copy)
    again = prepare_corpus(
        [src], copy, root, workers=1, progress=lambda stage, done, total: stages.append(stage)
    )
    assert again == first
    assert "cached" in stages and "prepare" not in stages
    assert (first / "manifest.json").stat().st_mtime_ns == stamp
    # An option that changes the output gives a new corpus; one that does not, the same.
    assert prepare_corpus([src], tokenizer_dir, root, val_fraction=0.2, workers=1) != first
    assert prepare_corpus([src], tokenizer_dir, root, max_bad_fraction=0.5, workers=1) == first
    # Changed input content: a new corpus.
    write_lines(src, jsonl(docs(31)))
    assert prepare_corpus([src], tokenizer_dir, root, workers=1) != first
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []


def test_a_failed_prepare_leaves_no_corpus_that_looks_finished(tmp_path, tokenizer_dir):
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(30)))
    root = tmp_path / "out"

    def crash(stage, done, total):
        if stage == "prepare":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_corpus([src], tokenizer_dir, root, workers=1, progress=crash)
    assert list(root.iterdir()) == []


def test_the_split_is_by_document_hash_whatever_the_order_or_worker_count(tmp_path, tokenizer_dir):
    texts = docs(300)
    src = write_lines(tmp_path / "a.jsonl", jsonl(texts))
    shuffled = texts[:]
    random.Random(7).shuffle(shuffled)
    src2 = write_lines(tmp_path / "b.jsonl", jsonl(shuffled))
    opts = {"val_fraction": 0.1, "chunk_bytes": 4096}
    one = PreparedCorpus(prepare_corpus([src], tokenizer_dir, tmp_path / "o1", workers=1, **opts))
    two = PreparedCorpus(prepare_corpus([src], tokenizer_dir, tmp_path / "o2", workers=2, **opts))
    mixed = PreparedCorpus(
        prepare_corpus([src2], tokenizer_dir, tmp_path / "o3", workers=1, **opts)
    )
    for split in ("train", "val"):
        np.testing.assert_array_equal(one.split(split)[:], two.split(split)[:])
    tok = load_tok(tokenizer_dir)
    eos = tok.eos_token_id

    def val_docs(corpus):
        return sorted(tok.decode(s[:-1]) for s in segments(corpus.split("val")[:], eos))

    val = val_docs(one)
    assert 10 <= len(val) <= 60  # about 10% of 300
    assert set(val) <= set(texts)
    assert val_docs(mixed) == val
    assert one.manifest["counts"]["val_documents"] == len(val)


def test_validation_is_never_empty_when_there_are_two_documents(tmp_path, tokenizer_dir):
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(3)))
    corpus = PreparedCorpus(prepare_corpus([src], tokenizer_dir, tmp_path / "o", workers=1))
    counts = corpus.manifest["counts"]
    assert counts["val_documents"] == 1 and counts["train_documents"] == 2
    assert len(corpus.split("val")) > 0


def test_small_shards_roll_over_and_read_back_as_one_stream(tmp_path, tokenizer_dir):
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(40)))
    big = PreparedCorpus(
        prepare_corpus([src], tokenizer_dir, tmp_path / "o1", val_fraction=0, workers=1)
    )
    small = PreparedCorpus(
        prepare_corpus(
            [src], tokenizer_dir, tmp_path / "o2", val_fraction=0, shard_tokens=97, workers=1
        )
    )
    shards = small.manifest["splits"]["train"]["shards"]
    assert len(shards) > 3
    assert all(s["tokens"] <= 97 for s in shards)
    assert all((small.path / s["file"]).stat().st_size == 2 * s["tokens"] for s in shards)
    np.testing.assert_array_equal(small.split("train")[:], big.split("train")[:])
    np.testing.assert_array_equal(small.split("train")[90:300], big.split("train")[90:300])


def test_near_dedup_drops_near_copies_only_when_asked(tmp_path, tokenizer_dir):
    base = " ".join(f"word{i}" for i in range(200))
    near = base.replace("word100 ", "changed ")
    texts = [base, near] + docs(5)
    src = write_lines(tmp_path / "a.jsonl", jsonl(texts))
    plain = prepare_corpus([src], tokenizer_dir, tmp_path / "o1", workers=1)
    assert PreparedCorpus(plain).manifest["counts"]["near_duplicates"] == 0
    assert PreparedCorpus(plain).manifest["counts"]["kept"] == 7
    deduped = prepare_corpus([src], tokenizer_dir, tmp_path / "o2", near_dedup=True, workers=1)
    counts = PreparedCorpus(deduped).manifest["counts"]
    assert counts["near_duplicates"] == 1
    assert counts["kept"] == 6


def test_options_name_the_bad_field():
    with pytest.raises(ValueError, match="val_fraction"):
        PrepareOptions(val_fraction=0.9)
    with pytest.raises(ValueError, match="workers"):
        PrepareOptions(workers=0)
    with pytest.raises(TypeError, match="unknown option"):
        prepare_corpus([], "x", "y", val_fractoin=0.1)


def test_missing_input_and_unloadable_tokenizer_are_clear_errors(tmp_path, tokenizer_dir):
    with pytest.raises(FileNotFoundError, match=r"inputs\[0\]"):
        prepare_corpus([tmp_path / "nope.jsonl"], tokenizer_dir, tmp_path / "o")
    src = write_lines(tmp_path / "a.jsonl", jsonl(docs(2)))
    with pytest.raises(ValueError, match="tokenizer"):
        prepare_corpus([src], tmp_path / "no-such-model", tmp_path / "o")


def test_cleaning_normalizes_and_drops_control_characters():
    assert clean_text("e\u0301") == "\u00e9"
    assert clean_text("a\r\nb\rc") == "a\nb\nc"
    assert clean_text("a\x00b\x07c\tt\n\x7f\x85") == "abc\tt\n"
    assert clean_text("x\ud800y") == "xy"
    assert clean_text("plain ascii") == "plain ascii"


def test_an_over_long_line_is_skipped_without_holding_it_whole(tmp_path):
    path = tmp_path / "a.jsonl"
    with path.open("wb") as f:
        f.write(b'{"text": "one"}\n')
        f.write(b'{"text": "' + b"x" * (3 << 20) + b'"}\n')
        f.write(b'{"text": "three"}\n{"text": "four"}')  # no final newline
    chunks = list(iter_line_chunks(path, max_line_bytes=1000, chunk_bytes=1 << 30))
    lines = [line for c in chunks for line in c.lines]
    assert len(lines) == 4
    assert lines[0] == b'{"text": "one"}'
    assert len(lines[1]) <= 1000 and 1 in chunks[0].oversized
    assert lines[2:] == [b'{"text": "three"}', b'{"text": "four"}']


def test_dtype_is_uint32_when_the_vocabulary_does_not_fit_uint16(tmp_path):
    spec = TokenizerSpec(
        name_or_path="big",
        fingerprint="f",
        tokenizer_json="{}",
        vocab_size=70_000,
        eos_token_id=69_999,
        bos_token_id=None,
        add_bos=False,
    )
    assert spec.dtype == "uint32"
    writer = ShardWriter(tmp_path, "train", np.dtype(spec.dtype), shard_tokens=4)
    writer.write(np.array([69_999, 1, 2], dtype=np.int64))
    writer.write(np.array([65_536, 3], dtype=np.int64))
    entry = writer.close()
    assert [s["tokens"] for s in entry["shards"]] == [4, 1]
    data = np.fromfile(tmp_path / "train-00000.bin", dtype="<u4")
    assert data.tolist() == [69_999, 1, 2, 65_536]


def docs_in_val(n: int, val_fraction: float) -> list[str]:
    """``n`` distinct documents whose text hash puts each of them in validation."""
    from trainer.data.dedup import doc_digest
    from trainer.data.packing import split_value

    picked = [t for t in docs(200) if split_value(doc_digest(clean_text(t))) < val_fraction]
    assert len(picked) >= n
    return picked[:n]


@pytest.mark.parametrize("n", [1, 2])
def test_it_refuses_a_corpus_whose_documents_all_land_in_validation(n, tmp_path, tokenizer_dir):
    src = write_lines(tmp_path / "tiny.jsonl", jsonl(docs_in_val(n, 0.5)))
    root = tmp_path / "out"
    with pytest.raises(EmptyCorpusError) as info:
        prepare_corpus([src], tokenizer_dir, root, val_fraction=0.5, workers=1)
    message = str(info.value)
    assert message.startswith("empty train split for tiny.jsonl:")
    assert f"all {n} documents kept went to validation ({n} documents" in message
    assert "none to train (0 tokens) with val_fraction=0.5" in message
    assert "lower val_fraction (--val-fraction" in message
    counts, tokens = info.value.counts, info.value.tokens
    assert counts["train_documents"] == 0 and counts["val_documents"] == n
    assert tokens["train"] == 0 and tokens["val"] > 0
    assert f"{tokens['val']} tokens" in message
    assert list(root.iterdir()) == []
    # Without a validation split the same documents train.
    out = prepare_corpus([src], tokenizer_dir, root, val_fraction=0.0, workers=1)
    assert PreparedCorpus(out).manifest["counts"]["train_documents"] == n


def test_a_corpus_with_every_document_dropped_names_each_reason(tmp_path, tokenizer_dir):
    lines = jsonl(["ab", "cd", "ef"]) + ['{"body": "no text key"}', '{"text": "  "}']
    src = write_lines(tmp_path / "dropped.jsonl", lines)
    with pytest.raises(EmptyCorpusError) as info:
        prepare_corpus(
            [src], tokenizer_dir, tmp_path / "out", min_chars=10, max_bad_fraction=1, workers=1
        )
    message = str(info.value)
    assert message.startswith("empty corpus dropped.jsonl: no document left")
    assert "all 5 documents read were dropped" in message
    assert "too_short: 3 (shorter than min_chars=10 after cleaning: lower min_chars" in message
    assert "missing_field: 1 (no 'text' key: set text_field (--text-field)" in message
    assert "empty: 1 (empty or only whitespace" in message
    assert "duplicates" not in message  # no document got that far
    assert info.value.counts["bad"] == {"too_short": 3, "missing_field": 1, "empty": 1}
    assert info.value.counts["kept"] == 0
