"""The tokenizer's identity and the per-chunk work done in parallel.

:func:`load_tokenizer` reads the base model's fast tokenizer once (transformers
``AutoTokenizer``, local files only) and reduces it to a picklable
:class:`TokenizerSpec`: the Rust tokenizer's JSON plus the special ids. Workers
rebuild a ``tokenizers.Tokenizer`` from that JSON, so they never import
transformers.

:func:`process_chunk` is what a worker does with a chunk of raw lines:
validate, clean, hash, optionally MinHash, tokenize (``encode_batch_fast``
without special tokens) and add BOS/EOS itself. Duplicates are tokenized too and
dropped by the main process, which keeps it to one round trip per chunk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data.dedup import doc_digest, minhash_signature
from trainer.data.reading import LineChunk
from trainer.data.validation import LineChecker

__all__ = ["ChunkResult", "TokenizerSpec", "load_tokenizer", "process_chunk"]

ENCODE_BATCH = 256


@dataclass(frozen=True)
class TokenizerSpec:
    """Everything needed to tokenize like the base model, in picklable form."""

    name_or_path: str
    fingerprint: str
    tokenizer_json: str = field(repr=False)
    vocab_size: int
    eos_token_id: int
    bos_token_id: int | None
    add_bos: bool

    @property
    def dtype(self) -> str:
        """uint16 when every id fits, else uint32."""
        return "uint16" if self.vocab_size <= 1 << 16 else "uint32"

    def identity(self) -> dict[str, Any]:
        """The manifest's ``tokenizer`` entry."""
        return {
            "name_or_path": self.name_or_path,
            "fingerprint": self.fingerprint,
            "vocab_size": self.vocab_size,
            "eos_token_id": self.eos_token_id,
            "bos_token_id": self.bos_token_id,
            "add_bos": self.add_bos,
        }


def load_tokenizer(tokenizer: Any) -> TokenizerSpec:
    """A :class:`TokenizerSpec` from a model directory, a cached hub id or a loaded tokenizer."""
    from trainer.shards import tokenizer_fingerprint

    if isinstance(tokenizer, (str, Path)):
        from transformers import AutoTokenizer

        name = str(tokenizer)
        try:
            tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
        except Exception as exc:  # transformers raises several types for "not there"
            raise ValueError(f"tokenizer: cannot load {name!r} from local files: {exc}") from None
    else:
        tok = tokenizer
        name = getattr(tok, "name_or_path", "") or "<in-memory tokenizer>"
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"tokenizer: {name!r} has no fast (Rust) tokenizer")
    if tok.eos_token_id is None:
        raise ValueError(f"tokenizer: {name!r} has no EOS token to end documents with")
    # Does the model put BOS first? Ask the tokenizer itself, as it would encode a prompt.
    probe = tok("a", add_special_tokens=True)["input_ids"]
    add_bos = tok.bos_token_id is not None and bool(probe) and probe[0] == tok.bos_token_id
    return TokenizerSpec(
        name_or_path=name,
        fingerprint=tokenizer_fingerprint(tokenizer),
        tokenizer_json=tok.backend_tokenizer.to_str(),
        vocab_size=len(tok),
        eos_token_id=int(tok.eos_token_id),
        bos_token_id=None if tok.bos_token_id is None else int(tok.bos_token_id),
        add_bos=add_bos,
    )


@dataclass
class ChunkResult:
    """A chunk after validation and tokenization.

    ``bad`` holds ``(line_index_in_chunk, kind, raw_head)``; document ``i`` has
    digest ``digests[i]`` and tokens ``tokens[offsets[i]:offsets[i+1]]`` (BOS/EOS
    included); ``signatures`` is set when near dedup is on.
    """

    file_index: int
    first_line: int
    lines: int
    blank_lines: int
    bytes_done: int
    bad: list[tuple[int, str, bytes]]
    digests: list[bytes]
    chars: int
    samples: list[str]
    tokens: np.ndarray
    offsets: np.ndarray
    signatures: np.ndarray | None = None


_worker_state: dict[str, Any] = {}


def init_worker(spec: TokenizerSpec, threads: int) -> None:
    """Pool initializer: build the Rust tokenizer once per process."""
    if threads <= 1:
        # One process per core already: Rust threads on top would oversubscribe.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        os.environ["RAYON_NUM_THREADS"] = "1"
    from tokenizers import Tokenizer

    _worker_state["tokenizer"] = Tokenizer.from_str(spec.tokenizer_json)
    _worker_state["spec"] = spec


def _encode(
    texts: list[str], spec: TokenizerSpec, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    tok = _worker_state["tokenizer"]
    head = np.array([spec.bos_token_id] if spec.add_bos else [], dtype=dtype)
    tail = np.array([spec.eos_token_id], dtype=dtype)
    parts: list[np.ndarray] = []
    lengths: list[int] = []
    for start in range(0, len(texts), ENCODE_BATCH):
        batch = tok.encode_batch_fast(texts[start : start + ENCODE_BATCH], add_special_tokens=False)
        for enc in batch:
            # np.array over the id list is a C loop; flattening in Python was ~5x slower.
            ids = np.array(enc.ids, dtype=dtype)
            parts += (head, ids, tail)
            lengths.append(len(head) + len(ids) + 1)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
    return flat, offsets


def process_chunk(
    chunk: LineChunk,
    checker: LineChecker,
    *,
    sample_count: int = 0,
    near_dedup_perm: int = 0,
) -> ChunkResult:
    """Validate, clean, hash and tokenize one chunk (runs in a worker or inline)."""
    spec: TokenizerSpec = _worker_state["spec"]
    bad: list[tuple[int, str, bytes]] = []
    texts: list[str] = []
    blank = 0
    chars = 0
    for k, raw in enumerate(chunk.lines):
        if not raw.strip():
            blank += 1
            continue
        text, kind = checker.check(raw, k in chunk.oversized)
        if kind is not None:
            bad.append((k, kind, raw[:400]))
        else:
            texts.append(text)  # type: ignore[arg-type]
            chars += len(text)  # type: ignore[arg-type]
    digests = [doc_digest(t) for t in texts]
    signatures = None
    if near_dedup_perm:
        signatures = (
            np.stack([minhash_signature(t, num_perm=near_dedup_perm) for t in texts])
            if texts
            else np.zeros((0, near_dedup_perm), dtype=np.uint64)
        )
    tokens, offsets = _encode(texts, spec, np.dtype(spec.dtype))
    return ChunkResult(
        file_index=chunk.file_index,
        first_line=chunk.first_line,
        lines=len(chunk.lines),
        blank_lines=blank,
        bytes_done=chunk.bytes_done,
        bad=bad,
        digests=digests,
        chars=chars,
        samples=[t[:500] for t in texts[:sample_count]],
        tokens=tokens,
        offsets=offsets,
        signatures=signatures,
    )
