"""Streaming line reader over plain, gzip and zstandard JSONL files.

Memory stays bounded whatever the file size: files are read in blocks, split on
newlines, and handed out in chunks of about ``chunk_bytes``. A line longer than
``max_line_bytes`` is never held whole: its head is kept for the report and the
rest is skipped up to the next newline.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

__all__ = ["LineChunk", "compression_of", "iter_line_chunks", "open_binary", "sha256_file"]

BLOCK_BYTES = 1 << 20
# Bytes of an over-long line kept for its report excerpt.
HEAD_BYTES = 256


def compression_of(path: str | Path) -> str:
    """'gzip', 'zstd' or 'none', from the file name (.gz / .zst / anything else)."""
    name = str(path).lower()
    if name.endswith(".gz"):
        return "gzip"
    if name.endswith(".zst") or name.endswith(".zstd"):
        return "zstd"
    return "none"


class _CountingReader(io.RawIOBase):
    """Wraps a raw file and counts the (compressed) bytes read from it, for progress."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)
        if n:
            self.bytes_read += n
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: str | Path) -> tuple[BinaryIO, _CountingReader]:
    """The decompressed byte stream of ``path`` and the counter of raw bytes consumed."""
    counter = _CountingReader(open(path, "rb"))  # noqa: SIM115 - closed by the caller
    kind = compression_of(path)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=counter, mode="rb"), counter  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(counter, read_size=BLOCK_BYTES)
        return reader, counter  # type: ignore[return-value]
    return counter, counter  # type: ignore[return-value]


@dataclass
class LineChunk:
    """Consecutive lines of one file.

    ``lines[k]`` is line ``first_line + k`` (1-based) without its newline;
    indices in ``oversized`` are lines longer than the limit, of which only the
    head was kept. ``bytes_done`` is the raw file bytes consumed so far.
    """

    file_index: int
    first_line: int
    lines: list[bytes]
    oversized: set[int] = field(default_factory=set)
    bytes_done: int = 0


def iter_line_chunks(
    path: str | Path,
    *,
    file_index: int = 0,
    chunk_bytes: int = 2 << 20,
    max_line_bytes: int = 64 << 20,
) -> Iterator[LineChunk]:
    """Yield the lines of ``path`` in chunks of about ``chunk_bytes`` (decompressed)."""
    stream, counter = open_binary(path)
    try:
        line_no = 1
        lines: list[bytes] = []
        oversized: set[int] = set()
        size = 0
        pending = b""  # an incomplete line carried over from the previous block
        skipping = False  # inside an over-long line, discarding up to its newline
        while True:
            block = stream.read(BLOCK_BYTES)
            if not block:
                break
            if skipping:
                nl = block.find(b"\n")
                if nl < 0:
                    continue
                block = block[nl + 1 :]
                skipping = False
            parts = (pending + block).split(b"\n") if pending else block.split(b"\n")
            pending = parts.pop()
            lines.extend(parts)
            size += len(block)
            if len(pending) > max_line_bytes:
                oversized.add(len(lines))
                lines.append(pending[:HEAD_BYTES])
                pending = b""
                skipping = True
            if size >= chunk_bytes:
                yield LineChunk(file_index, line_no, lines, oversized, counter.bytes_read)
                line_no += len(lines)
                lines, oversized, size = [], set(), 0
        if pending:
            lines.append(pending)
        if lines:
            yield LineChunk(file_index, line_no, lines, oversized, counter.bytes_read)
    finally:
        stream.close()
        counter.close()


def sha256_file(path: str | Path, progress=None) -> str:
    """sha256 of the file's bytes as stored (compressed files hash compressed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(BLOCK_BYTES * 4)
            if not block:
                break
            h.update(block)
            if progress is not None:
                progress(len(block))
    return h.hexdigest()
