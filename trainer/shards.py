"""Reading prepared corpora: the manifest and memory-mapped token shards.

A prepared corpus (written by :mod:`trainer.prepare`) is a directory with
``manifest.json`` and raw little-endian token shards (see docs/CONTRACTS.md).
This module is the only reader the trainer needs:

- ``PreparedCorpus(dir)``: ``.manifest`` (the parsed JSON), ``.dtype``,
  ``.split("train" | "val")`` -> :class:`TokenArray`.
- :class:`TokenArray`: ``len()`` and indexing/slicing (``arr[i:j]`` -> numpy
  array) over all shards of a split as if they were one array; a slice may
  cross shard boundaries. Shards are opened lazily with ``numpy.memmap``, so
  nothing is read until it is sliced.
- ``tokenizer_fingerprint(path_or_tokenizer)``: sha256 over the contents of a
  tokenizer's files, so the same tokenizer in two folders has one fingerprint.
- ``check_same_tokenizer(corpora)``: the common tokenizer entry of corpora to be
  mixed, or a :class:`CorpusFormatError` naming the one that differs.

Mixing corpora by weight is done by the trainer over several
``PreparedCorpus`` objects; each one is self-describing (tokenizer fingerprint,
dtype, token counts), so a mix can be checked for a common tokenizer.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "TOKENIZER_FILES",
    "CorpusFormatError",
    "PreparedCorpus",
    "TokenArray",
    "check_same_tokenizer",
    "tokenizer_fingerprint",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
SPLITS = ("train", "val")

# Files that define how text becomes tokens. Whichever exist are hashed, in sorted
# order; model weights and chat templates do not change tokenization.
TOKENIZER_FILES = (
    "added_tokens.json",
    "merges.txt",
    "special_tokens_map.json",
    "spiece.model",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
)


class CorpusFormatError(ValueError):
    """A prepared-corpus directory that is missing, incomplete or inconsistent."""


class TokenArray:
    """The tokens of one split: several shard files read as one 1-D array."""

    def __init__(self, files: list[Path], counts: list[int], dtype: np.dtype) -> None:
        if len(files) != len(counts):
            raise ValueError("files and counts differ in length")
        self.dtype = np.dtype(dtype)
        self._files = files
        self._counts = counts
        # _starts[k] is the global index of shard k's first token.
        self._starts: list[int] = []
        total = 0
        for c in counts:
            self._starts.append(total)
            total += c
        self._len = total
        self._maps: dict[int, np.memmap] = {}

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"TokenArray(tokens={self._len}, shards={len(self._files)}, dtype={self.dtype})"

    def _shard(self, k: int) -> np.ndarray:
        m = self._maps.get(k)
        if m is None:
            if self._counts[k] == 0:
                return np.empty(0, dtype=self.dtype)
            m = np.memmap(self._files[k], dtype=self.dtype, mode="r", shape=(self._counts[k],))
            self._maps[k] = m
        return m

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._len)
            if step == 1:
                return self._read(start, stop)
            idx = np.arange(start, stop, step)
            if idx.size == 0:
                return np.empty(0, dtype=self.dtype)
            lo = int(idx.min())
            return self._read(lo, int(idx.max()) + 1)[idx - lo]
        i = int(index)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"token index {index} out of range for {self._len} tokens")
        k = bisect.bisect_right(self._starts, i) - 1
        return self._shard(k)[i - self._starts[k]]

    def _read(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.empty(0, dtype=self.dtype)
        k = bisect.bisect_right(self._starts, start) - 1
        parts = []
        pos = start
        while pos < stop:
            # Skip empty shards (their start equals the next one's).
            while self._counts[k] == 0 or pos >= self._starts[k] + self._counts[k]:
                k += 1
            local = pos - self._starts[k]
            take = min(stop - pos, self._counts[k] - local)
            parts.append(self._shard(k)[local : local + take])
            pos += take
        # Always a fresh in-memory array: callers may keep it after the memmap closes.
        return np.array(parts[0]) if len(parts) == 1 else np.concatenate(parts)


class PreparedCorpus:
    """A prepared-corpus directory: its manifest and its train/val token arrays."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise CorpusFormatError(f"no {MANIFEST_NAME} in {self.path}")
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CorpusFormatError(f"cannot read {manifest_path}: {exc}") from None
        version = self.manifest.get("version")
        if version != MANIFEST_VERSION:
            raise CorpusFormatError(
                f"{manifest_path}: manifest version {version!r}, expected {MANIFEST_VERSION}"
            )
        try:
            self.dtype = np.dtype(self.manifest["dtype"])
        except (KeyError, TypeError) as exc:
            raise CorpusFormatError(f"{manifest_path}: bad dtype: {exc}") from None
        if self.dtype not in (np.dtype("uint16"), np.dtype("uint32")):
            raise CorpusFormatError(f"{manifest_path}: dtype must be uint16 or uint32")
        self._arrays: dict[str, TokenArray] = {}

    def __repr__(self) -> str:
        return f"PreparedCorpus({str(self.path)!r})"

    @property
    def tokenizer(self) -> dict[str, Any]:
        """The manifest's tokenizer identity (name_or_path, fingerprint, special ids)."""
        return self.manifest["tokenizer"]

    def num_tokens(self, name: str) -> int:
        """Tokens in split ``name`` according to the manifest."""
        return int(self._split_entry(name)["tokens"])

    def _split_entry(self, name: str) -> dict[str, Any]:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        try:
            return self.manifest["splits"][name]
        except (KeyError, TypeError):
            raise CorpusFormatError(f"{self.path}: manifest has no split {name!r}") from None

    def split(self, name: str) -> TokenArray:
        """The tokens of split ``name`` ("train" or "val") as one lazily memmapped array."""
        arr = self._arrays.get(name)
        if arr is not None:
            return arr
        entry = self._split_entry(name)
        files: list[Path] = []
        counts: list[int] = []
        for shard in entry.get("shards", []):
            f = self.path / shard["file"]
            # Shard names come from the manifest: keep them inside the corpus directory.
            if Path(shard["file"]).name != shard["file"]:
                raise CorpusFormatError(f"{self.path}: bad shard file name {shard['file']!r}")
            n = int(shard["tokens"])
            size = f.stat().st_size if f.exists() else -1
            if size != n * self.dtype.itemsize:
                raise CorpusFormatError(
                    f"{f}: expected {n} tokens ({n * self.dtype.itemsize} bytes), "
                    f"found {size} bytes"
                )
            files.append(f)
            counts.append(n)
        arr = TokenArray(files, counts, self.dtype)
        if len(arr) != int(entry["tokens"]):
            raise CorpusFormatError(
                f"{self.path}: split {name!r} shards hold {len(arr)} tokens, "
                f"manifest says {entry['tokens']}"
            )
        self._arrays[name] = arr
        return arr


def check_same_tokenizer(corpora: Sequence[PreparedCorpus]) -> dict[str, Any]:
    """The tokenizer entry shared by all ``corpora``; an error naming any that differ.

    Mixing corpora by weight only makes sense when their token ids mean the same
    thing: same tokenizer files (fingerprint) and the same BOS/EOS convention.
    """
    if not corpora:
        raise ValueError("no corpora to mix")
    first = corpora[0].tokenizer
    keys = ("fingerprint", "eos_token_id", "bos_token_id", "add_bos")
    for corpus in corpora[1:]:
        other = corpus.tokenizer
        for key in keys:
            if other.get(key) != first.get(key):
                raise CorpusFormatError(
                    f"{corpus.path}: tokenizer {key} {other.get(key)!r} differs from "
                    f"{corpora[0].path}'s {first.get(key)!r}; corpora to mix must be "
                    "prepared with the same tokenizer"
                )
    return first


def _hash_tokenizer_dir(directory: Path) -> str:
    h = hashlib.sha256()
    found = False
    for name in sorted(TOKENIZER_FILES):
        f = directory / name
        if f.is_file():
            found = True
            data = f.read_bytes()
            # Name and length framing so two file sets never hash alike by concatenation.
            h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0")
            h.update(data)
    if not found:
        raise FileNotFoundError(f"no tokenizer files ({', '.join(TOKENIZER_FILES)}) in {directory}")
    return h.hexdigest()


def _local_dir(name_or_path: str) -> Path | None:
    p = Path(name_or_path)
    if p.is_dir():
        return p
    # A hub id already in the local cache; never downloads.
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, local_files_only=True))
    except Exception:
        return None


def tokenizer_fingerprint(path_or_tokenizer: Any) -> str:
    """sha256 over the tokenizer files' contents (sorted by name; whichever exist).

    Accepts a directory, a hub id already in the local cache, or a loaded
    transformers tokenizer (hashed from its directory when it was loaded from
    one, else from a temporary ``save_pretrained`` copy).
    """
    if isinstance(path_or_tokenizer, (str, Path)):
        local = _local_dir(str(path_or_tokenizer))
        if local is None:
            raise FileNotFoundError(f"tokenizer {path_or_tokenizer!s} is not on disk")
        return _hash_tokenizer_dir(local)
    name = getattr(path_or_tokenizer, "name_or_path", "") or ""
    if name:
        local = _local_dir(name)
        if local is not None:
            try:
                return _hash_tokenizer_dir(local)
            except FileNotFoundError:
                pass
    if not hasattr(path_or_tokenizer, "save_pretrained"):
        raise TypeError("expected a path, hub id or transformers tokenizer")
    with tempfile.TemporaryDirectory() as tmp:
        path_or_tokenizer.save_pretrained(tmp)
        return _hash_tokenizer_dir(Path(tmp))
