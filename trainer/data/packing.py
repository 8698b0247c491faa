"""Packing documents' tokens into bounded-size shard files, and the train/val split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ShardWriter", "SplitWriter", "in_val"]

DEFAULT_SHARD_TOKENS = 1 << 28
_HASH_SPACE = float(1 << 64)


def split_value(digest: bytes) -> float:
    """A document's position in [0, 1) from its text hash: fixed by content alone."""
    return int.from_bytes(digest[:8], "little") / _HASH_SPACE


def in_val(digest: bytes, val_fraction: float) -> bool:
    """Whether a document belongs to validation: by its text hash, never by random state."""
    return split_value(digest) < val_fraction


class ShardWriter:
    """Appends token arrays to ``<prefix>-NNNNN.bin`` files of at most ``shard_tokens`` each."""

    def __init__(self, out_dir: Path, prefix: str, dtype: np.dtype, shard_tokens: int) -> None:
        if shard_tokens < 1:
            raise ValueError("shard_tokens must be positive")
        self.out_dir = out_dir
        self.prefix = prefix
        # Little-endian whatever the host, as the manifest promises.
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.shard_tokens = shard_tokens
        self.shards: list[dict[str, Any]] = []
        self.tokens = 0
        self.documents = 0
        self._file = None
        self._in_shard = 0

    def _open_next(self) -> None:
        name = f"{self.prefix}-{len(self.shards):05d}.bin"
        self._file = open(self.out_dir / name, "wb", buffering=4 << 20)  # noqa: SIM115
        self.shards.append({"file": name, "tokens": 0})
        self._in_shard = 0

    def write(self, tokens: np.ndarray) -> None:
        """Append one document's tokens; a document may straddle two shards."""
        arr = np.asarray(tokens).astype(self.dtype, copy=False)
        self.documents += 1
        pos = 0
        while pos < len(arr):
            if self._file is None or self._in_shard >= self.shard_tokens:
                self._close_current()
                self._open_next()
            take = min(len(arr) - pos, self.shard_tokens - self._in_shard)
            self._file.write(arr[pos : pos + take].tobytes())  # type: ignore[union-attr]
            self._in_shard += take
            self.shards[-1]["tokens"] += take
            self.tokens += take
            pos += take

    def _close_current(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> dict[str, Any]:
        """Flush and close; the manifest entry ``{"tokens", "documents", "shards"}``."""
        self._close_current()
        return {"tokens": self.tokens, "documents": self.documents, "shards": self.shards}


class SplitWriter:
    """Routes documents to the train or val writer by text hash.

    With ``val_fraction > 0`` validation is never left empty when there are at
    least two documents: the document with the smallest split value is held back
    and goes to val at the end if no other document did (else to train). That
    choice depends only on the set of documents, so it is deterministic too.
    """

    def __init__(self, train: ShardWriter, val: ShardWriter, val_fraction: float) -> None:
        self.train = train
        self.val = val
        self.val_fraction = val_fraction
        self._held: tuple[float, np.ndarray] | None = None

    def write(self, digest: bytes, tokens: np.ndarray) -> None:
        """Send one document to its split."""
        u = split_value(digest)
        if u < self.val_fraction:
            self.val.write(tokens)
            return
        holding = self.val_fraction > 0 and self.val.documents == 0
        if holding and (self._held is None or u < self._held[0]):
            if self._held is not None:
                self.train.write(self._held[1])
            self._held = (u, np.array(tokens))
            return
        self.train.write(tokens)

    def finish(self) -> None:
        """Place the held-back document."""
        if self._held is not None:
            if self.val.documents == 0 and self.train.documents > 0:
                self.val.write(self._held[1])
            else:
                self.train.write(self._held[1])
            self._held = None
