"""JSONL corpora -> packed token shards with a manifest (the data side of the trainer).

Library API (used by the worker and the web app's tasks):

- ``validate_corpus(paths, *, text_field="text", max_doc_chars=1_000_000, min_chars=0,
  report_limit=20, sample_count=5, progress=None) -> ValidationReport``: one streaming pass
  without a tokenizer for the dataset page: documents, bytes, estimated tokens (chars/4),
  bad lines by kind with counts and the first ``report_limit`` of each (file, 1-based line,
  excerpt), a few samples. ``report.to_dict()`` is JSON-ready.
- ``prepare_corpus(inputs, tokenizer, out_root, *, options=None, progress=None, **option_fields)
  -> Path``: validate, clean, dedup, tokenize (in parallel), pack into ``out_root/<key>/``
  (manifest.json + shards, see docs/CONTRACTS.md and :mod:`trainer.shards`). ``<key>`` hashes
  the inputs' sha256s, the tokenizer fingerprint and every option that changes the output, so
  the same call again returns the existing directory at once. Work happens in a temporary
  directory renamed into place at the end: a crash never leaves a corpus that looks finished,
  and the next prepare into the same root removes the temporary directories of prepares that
  died (see ``_OutputLock``). Raises :class:`CorpusRejected` (``.report``) when invalid lines
  exceed ``max_bad_fraction`` and :class:`EmptyCorpusError` when no document is left, or
  when every document kept went to the validation split (nothing to train on).
- ``PrepareOptions``: the options, each documented; bad values raise ``ValueError`` naming
  the field.
- ``progress(stage, bytes_done, bytes_total)``: stages ``hash`` (reading inputs for their
  sha256), ``wait`` (another process is preparing the same corpus into the same root),
  ``prepare`` (the main pass), ``cached`` (result reused), ``validate``.

CLI::

    python -m trainer.prepare --input A.jsonl [--input B.jsonl.zst ...] --tokenizer DIR \\
        --out ROOT [--text-field text] [--val-fraction 0.01] [--max-bad-fraction F] \\
        [--min-chars N] [--max-doc-chars N] [--near-dedup] [--workers N] [--validate-only]

stdout: one JSON object a line, ``{"kind": "progress", "stage", "bytes_done", "bytes_total"}``
then ``{"kind": "result", "status": "ok" | "cached" | "rejected" | "empty", ...}``; stderr: a
human-readable summary. Exit codes: 0 ok, 1 unexpected error, 2 usage error (bad option, missing
file, unloadable tokenizer), 3 corpus rejected, 4 empty corpus (or nothing in the train split).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from trainer.data.dedup import ExactDedup, NearDedup
from trainer.data.packing import DEFAULT_SHARD_TOKENS, ShardWriter, SplitWriter
from trainer.data.reading import iter_line_chunks, sha256_file
from trainer.data.tokenize import (
    ChunkResult,
    TokenizerSpec,
    init_worker,
    load_tokenizer,
    process_chunk,
)
from trainer.data.validation import (
    DEFAULT_MAX_DOC_CHARS,
    LineChecker,
    ProgressFn,
    ValidationReport,
    check_inputs,
    max_line_bytes_for,
    validate_corpus,
)
from trainer.shards import MANIFEST_NAME, MANIFEST_VERSION

__all__ = [
    "CorpusRejected",
    "EmptyCorpusError",
    "PrepareOptions",
    "ValidationReport",
    "main",
    "prepare_corpus",
    "validate_corpus",
]

# Bumped when the shard bytes for the same inputs and options would change.
FORMAT_REVISION = 1
EXIT_USAGE, EXIT_REJECTED, EXIT_EMPTY = 2, 3, 4


class CorpusRejected(Exception):
    """Too many bad lines; ``report`` says which, where, and how many."""

    def __init__(self, report: ValidationReport, max_bad_fraction: float) -> None:
        self.report = report
        self.max_bad_fraction = max_bad_fraction
        super().__init__(
            f"corpus rejected: {report.invalid_total} of {report.lines - report.blank_lines} "
            f"lines are bad ({report.invalid_fraction:.2%} > max_bad_fraction "
            f"{max_bad_fraction:.2%})\n{report.summary()}"
        )


class EmptyCorpusError(ValueError):
    """No document to train on: no lines, none left after validation and dedup, or none in
    the train split. ``counts`` (the manifest's counts, when the main pass ran) and
    ``tokens`` (per split) say where the documents went."""

    def __init__(
        self,
        message: str,
        *,
        counts: dict[str, Any] | None = None,
        tokens: dict[str, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.counts = counts
        self.tokens = tokens


# Why documents of each kind were dropped, and the option that decides it; {o} is the
# PrepareOptions, so the message shows the value in force.
_DROP_HINTS = {
    "too_short": "shorter than min_chars={o.min_chars} after cleaning: lower min_chars "
    "(--min-chars)",
    "too_long": "longer than max_doc_chars={o.max_doc_chars}: raise max_doc_chars "
    "(--max-doc-chars)",
    "missing_field": "no {o.text_field!r} key: set text_field (--text-field) to the key "
    "holding the text",
    "not_string": "{o.text_field!r} is not a string",
    "empty": "empty or only whitespace after cleaning",
    "invalid_json": "not JSON",
    "invalid_utf8": "not UTF-8",
    "not_object": "not a JSON object",
}


def _corpus_name(files: Sequence[Path]) -> str:
    # File names only: the message reaches the web page, and server paths need not.
    return ", ".join(f.name for f in files)


def _check_trainable(
    files: Sequence[Path], report: ValidationReport, body: dict[str, Any], opts: PrepareOptions
) -> None:
    """Raise EmptyCorpusError unless the train split holds at least one document."""
    counts, splits = body["counts"], body["splits"]
    name = _corpus_name(files)
    tokens = {"train": splits["train"]["tokens"], "val": splits["val"]["tokens"]}
    if counts["kept"] == 0:
        dropped = {
            **counts["bad"],
            "duplicates": counts["duplicates"],
            "near_duplicates": counts["near_duplicates"],
        }
        reasons = "\n".join(
            f"  {kind}: {n}"
            + (f" ({_DROP_HINTS[kind].format(o=opts)})" if kind in _DROP_HINTS else "")
            for kind, n in dropped.items()
            if n
        )
        raise EmptyCorpusError(
            f"empty corpus {name}: no document left after validation, cleaning and dedup; "
            f"all {counts['documents_read']} documents read were dropped:\n{reasons}\n"
            + report.summary(),
            counts=counts,
            tokens=tokens,
        )
    if counts["train_documents"] == 0:
        # The split goes by text hash: with very few documents all of them can land in
        # validation, and training would only fail later, far from the cause.
        raise EmptyCorpusError(
            f"empty train split for {name}: all {counts['kept']} documents kept went to "
            f"validation ({counts['val_documents']} documents, {tokens['val']} tokens) and "
            f"none to train (0 tokens) with val_fraction={opts.val_fraction}; lower "
            "val_fraction (--val-fraction; 0 trains on every document) or add documents",
            counts=counts,
            tokens=tokens,
        )


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, kw_only=True)
class PrepareOptions:
    """How a corpus is prepared. Fields marked (output) are part of the cache key."""

    text_field: str = "text"
    """(output) The JSON key holding each document's text."""
    val_fraction: float = 0.01
    """(output) Fraction of documents (by text hash) held out for validation, in [0, 0.5]."""
    max_bad_fraction: float = 0.05
    """Reject the corpus when more than this fraction of non-blank lines is invalid (0..1)."""
    min_chars: int = 0
    """(output) Drop documents shorter than this many characters after cleaning (too_short)."""
    max_doc_chars: int = DEFAULT_MAX_DOC_CHARS
    """(output) Documents longer than this many characters are bad lines (too_long)."""
    near_dedup: bool = False
    """(output) Also drop near duplicates (MinHash LSH over word 5-grams)."""
    near_dedup_threshold: float = 0.8
    """(output) Estimated Jaccard similarity from which a document is a near duplicate."""
    near_dedup_perm: int = 128
    """(output) MinHash permutations (more: better estimates, more memory)."""
    shard_tokens: int = DEFAULT_SHARD_TOKENS
    """(output) Tokens per shard file at most."""
    workers: int | None = None
    """None or 1: one process, the Rust tokenizer's threads on every core (measured the
    faster on a 2-core machine: bench/prepare_throughput.py); N > 1: a pool of N processes."""
    chunk_bytes: int = 2 << 20
    """Bytes of input handed to a worker at a time."""
    report_limit: int = 20
    """Bad lines of each kind kept as examples in the report."""

    _OUTPUT_FIELDS = (
        "text_field",
        "val_fraction",
        "min_chars",
        "max_doc_chars",
        "near_dedup",
        "near_dedup_threshold",
        "near_dedup_perm",
        "shard_tokens",
    )

    def __post_init__(self) -> None:
        errors = []
        if not isinstance(self.text_field, str) or not self.text_field:
            errors.append("text_field: must be a non-empty string")
        if not 0 <= self.val_fraction <= 0.5:
            errors.append("val_fraction: must be between 0 and 0.5")
        if not 0 <= self.max_bad_fraction <= 1:
            errors.append("max_bad_fraction: must be between 0 and 1")
        if self.min_chars < 0:
            errors.append("min_chars: must be >= 0")
        if self.max_doc_chars < 1:
            errors.append("max_doc_chars: must be >= 1")
        if self.min_chars > self.max_doc_chars:
            errors.append("min_chars: must not exceed max_doc_chars")
        if not 0 < self.near_dedup_threshold <= 1:
            errors.append("near_dedup_threshold: must be in (0, 1]")
        if not 16 <= self.near_dedup_perm <= 1024:
            errors.append("near_dedup_perm: must be between 16 and 1024")
        if self.shard_tokens < 1:
            errors.append("shard_tokens: must be >= 1")
        if self.workers is not None and not 1 <= self.workers <= 512:
            errors.append("workers: must be between 1 and 512")
        if self.chunk_bytes < 1:
            errors.append("chunk_bytes: must be >= 1")
        if self.report_limit < 0:
            errors.append("report_limit: must be >= 0")
        if errors:
            raise ValueError("; ".join(errors))

    def output_options(self) -> dict[str, Any]:
        """The options that change the prepared bytes (the cache key's part)."""
        opts = {name: getattr(self, name) for name in self._OUTPUT_FIELDS}
        if not self.near_dedup:
            # Unused parameters must not split the cache.
            del opts["near_dedup_threshold"], opts["near_dedup_perm"]
        return opts


def corpus_key(input_hashes: Sequence[str], spec: TokenizerSpec, options: PrepareOptions) -> str:
    """The cache key: sha256 over input hashes, tokenizer identity and output options."""
    payload = {
        "format": FORMAT_REVISION,
        "inputs": list(input_hashes),
        "tokenizer": spec.fingerprint,
        "add_bos": spec.add_bos,
        "options": options.output_options(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _hash_inputs(files: list[Path], progress: ProgressFn | None) -> list[str]:
    total = sum(f.stat().st_size for f in files)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress("hash", done, total)

    return [sha256_file(f, step) for f in files]


def _chunks(files: list[Path], options: PrepareOptions) -> Iterator[Any]:
    for index, path in enumerate(files):
        yield from iter_line_chunks(
            path,
            file_index=index,
            chunk_bytes=options.chunk_bytes,
            max_line_bytes=max_line_bytes_for(options.max_doc_chars),
        )


def _results(
    files: list[Path], spec: TokenizerSpec, options: PrepareOptions, sample_count: int
) -> Iterator[ChunkResult]:
    """Processed chunks in input order, from worker processes or in-process."""
    checker = LineChecker(
        text_field=options.text_field,
        max_doc_chars=options.max_doc_chars,
        min_chars=options.min_chars,
    )
    kw = {
        "sample_count": sample_count,
        "near_dedup_perm": options.near_dedup_perm if options.near_dedup else 0,
    }
    workers = options.workers or 1
    if workers == 1:
        init_worker(spec, threads=_default_workers())
        for chunk in _chunks(files, options):
            yield process_chunk(chunk, checker, **kw)
        return
    # spawn, not fork: the parent may already run Rust/torch threads, and fork copies locks.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=init_worker, initargs=(spec, 1)) as pool:
        # A bounded window of chunks in flight keeps memory flat (Pool.imap would read ahead
        # without limit).
        pending: collections.deque = collections.deque()
        for chunk in _chunks(files, options):
            pending.append(pool.apply_async(process_chunk, (chunk, checker), kw))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _run(
    files: list[Path],
    hashes: list[str],
    spec: TokenizerSpec,
    options: PrepareOptions,
    work_dir: Path,
    progress: ProgressFn | None,
) -> tuple[ValidationReport, dict[str, Any]]:
    """The main pass: returns the report and the manifest's counts and splits."""
    sizes = [f.stat().st_size for f in files]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    total = sum(sizes)
    report = ValidationReport(report_limit=options.report_limit)
    report.bytes = total
    report.files = [
        {"path": str(f.resolve()), "sha256": h, "bytes": n}
        for f, h, n in zip(files, hashes, sizes, strict=True)
    ]
    train = ShardWriter(work_dir, "train", spec.dtype, options.shard_tokens)
    val = ShardWriter(work_dir, "val", spec.dtype, options.shard_tokens)
    splitter = SplitWriter(train, val, options.val_fraction)
    exact = ExactDedup()
    near = (
        NearDedup(options.near_dedup_threshold, options.near_dedup_perm)
        if options.near_dedup
        else None
    )
    duplicates = near_duplicates = 0
    for result in _results(files, spec, options, report.sample_count):
        name = files[result.file_index].name
        report.lines += result.lines
        report.blank_lines += result.blank_lines
        for k, kind, raw in result.bad:
            report.add_bad(kind, name, result.first_line + k, raw)
        report.documents += len(result.digests)
        report.chars += result.chars
        room = report.sample_count - len(report.samples)
        report.samples.extend(result.samples[: max(room, 0)])
        offsets = result.offsets
        for i, digest in enumerate(result.digests):
            if exact.seen(digest):
                duplicates += 1
                continue
            if near is not None and near.seen(result.signatures[i]):  # type: ignore[index]
                near_duplicates += 1
                continue
            splitter.write(digest, result.tokens[offsets[i] : offsets[i + 1]])
        if progress is not None:
            progress("prepare", starts[result.file_index] + result.bytes_done, total)
    splitter.finish()
    train_entry, val_entry = train.close(), val.close()
    counts = {
        "documents_read": report.lines - report.blank_lines,
        "blank_lines": report.blank_lines,
        "bad": dict(report.bad),
        "duplicates": duplicates,
        "near_duplicates": near_duplicates,
        "kept": train_entry["documents"] + val_entry["documents"],
        "train_documents": train_entry["documents"],
        "val_documents": val_entry["documents"],
    }
    return report, {"counts": counts, "splits": {"train": train_entry, "val": val_entry}}


# -- Output locks and stale temporary directories ----------------------------------------
#
# A prepare of corpus <key> works in <root>/.tmp-<key32>-<random>/ and holds an exclusive
# flock on <root>/.lock-<key32> from before it creates that directory until after it has
# renamed or removed it. The kernel drops a flock when its holder dies (kill -9 included),
# so a .tmp-<key32>-* directory whose lock can be taken belongs to a prepare that is gone
# and is removed, and one whose lock is held is left alone. Prepares of other corpora into
# the same root hold other locks and never wait on each other; a second prepare of the same
# corpus waits for the first and then finds its result. A flock, not a pid file: a pid
# cannot be checked from another host sharing the root, and pids are reused.
# The lock file is unlinked by its holder before it lets go (so nothing stays behind); a
# process that opened the old file meanwhile sees after locking that the path no longer
# names its file, and opens it again.
_TMP_DIR = re.compile(r"\.tmp-([0-9a-f]{32})-[0-9a-f]{8}")
_LOCK_FILE = re.compile(r"\.lock-([0-9a-f]{32})")
LOCK_POLL_SECONDS = 0.5


class _OutputLock:
    """The exclusive lock on one corpus key's output under ``root`` (see the comment above)."""

    def __init__(self, root: Path, key32: str) -> None:
        self.path = root / f".lock-{key32}"
        self._fd: int | None = None

    def acquire(self, *, blocking: bool = True, wait: Callable[[], None] | None = None) -> bool:
        """Take the lock; False if ``blocking`` is False and another process holds it.

        ``wait()`` is called every ``LOCK_POLL_SECONDS`` while blocked (progress, so the
        worker's heartbeat goes on while another process prepares the same corpus).
        """
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if not blocking:
                            os.close(fd)
                            return False
                        if wait is not None:
                            wait()
                        time.sleep(LOCK_POLL_SECONDS)
                mine = os.fstat(fd)
                try:
                    now = os.stat(self.path)
                    same = (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                self._fd = fd
                return True
            os.close(fd)  # the previous holder unlinked it: lock the current file

    def release(self) -> None:
        """Unlink the lock file (while still holding it), then let go."""
        if self._fd is None:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        finally:
            os.close(self._fd)
            self._fd = None


def _remove_stale(root: Path, own_key32: str) -> None:
    """Remove the temporary directories (and lock files) of prepares that died.

    The caller holds ``own_key32``'s lock, so that key's temporary directories are all
    leftovers; another key's are removed only if its lock can be taken at once.
    """
    by_key: dict[str, list[Path]] = collections.defaultdict(list)
    for entry in root.iterdir():
        tmp, lock_file = _TMP_DIR.fullmatch(entry.name), _LOCK_FILE.fullmatch(entry.name)
        if tmp:
            by_key[tmp.group(1)].append(entry)
        elif lock_file:
            # A lock file alone: left by a prepare killed after its rename.
            by_key.setdefault(lock_file.group(1), [])
    for key32, dirs in by_key.items():
        if key32 == own_key32:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
            continue
        lock = _OutputLock(root, key32)
        if not lock.acquire(blocking=False):
            continue  # that prepare is alive
        try:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
        finally:
            lock.release()


def _existing(final: Path, key: str) -> bool:
    try:
        return json.loads((final / MANIFEST_NAME).read_text(encoding="utf-8")).get("key") == key
    except (OSError, ValueError):
        return False


def prepare_corpus(
    inputs: Sequence[str | Path],
    tokenizer: Any,
    out_root: str | Path,
    *,
    options: PrepareOptions | None = None,
    progress: ProgressFn | None = None,
    **option_fields: Any,
) -> Path:
    """Prepare ``inputs`` with ``tokenizer`` under ``out_root``; return the corpus directory.

    ``tokenizer`` is a model directory, a hub id already on disk, or a loaded fast
    tokenizer. Options come as ``options=PrepareOptions(...)`` or as keyword
    arguments with the same names (``val_fraction=0.02``), not both.
    """
    if options is not None and option_fields:
        raise TypeError("pass options=PrepareOptions(...) or option keywords, not both")
    known = {f.name for f in fields(PrepareOptions)}
    unknown = sorted(set(option_fields) - known)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)}")
    opts = options or PrepareOptions(**option_fields)
    files = check_inputs(list(inputs))
    spec = load_tokenizer(tokenizer)
    started = time.time()
    hashes = _hash_inputs(files, progress)
    key = corpus_key(hashes, spec, opts)
    root = Path(out_root)
    final = root / key[:32]
    total = sum(f.stat().st_size for f in files)
    if _existing(final, key):
        if progress is not None:
            progress("cached", total, total)
        return final
    root.mkdir(parents=True, exist_ok=True)
    lock = _OutputLock(root, key[:32])
    lock.acquire(wait=None if progress is None else lambda: progress("wait", 0, total))
    try:
        if _existing(final, key):  # the prepare we waited for made it
            if progress is not None:
                progress("cached", total, total)
            return final
        _remove_stale(root, key[:32])
        _prepare_locked(
            files,
            hashes,
            spec,
            key,
            opts,
            root / f".tmp-{key[:32]}-{uuid.uuid4().hex[:8]}",
            final,
            started,
            progress,
        )
    finally:
        lock.release()
    return final


def _prepare_locked(
    files: list[Path],
    hashes: list[str],
    spec: TokenizerSpec,
    key: str,
    opts: PrepareOptions,
    work: Path,
    final: Path,
    started: float,
    progress: ProgressFn | None,
) -> None:
    """The main pass into ``work``, renamed to ``final`` when complete (lock held)."""
    work.mkdir()
    try:
        report, body = _run(files, hashes, spec, opts, work, progress)
        if body["counts"]["documents_read"] == 0:
            raise EmptyCorpusError(
                f"empty corpus {_corpus_name(files)}: the input files hold no non-blank lines",
                counts=body["counts"],
            )
        if report.invalid_fraction > opts.max_bad_fraction:
            raise CorpusRejected(report, opts.max_bad_fraction)
        _check_trainable(files, report, body, opts)
        manifest = {
            "version": MANIFEST_VERSION,
            "key": key,
            "inputs": report.files,
            "text_field": opts.text_field,
            "tokenizer": spec.identity(),
            "dtype": spec.dtype,
            **body,
            "options": {**opts.output_options(), "max_bad_fraction": opts.max_bad_fraction},
            "report": report.to_dict(),
            "created": time.time(),
            "seconds": round(time.time() - started, 3),
        }
        (work / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        try:
            os.rename(work, final)
        except OSError:
            # A finished corpus is there already (written by a prepare that did not take
            # the lock, e.g. an older version): keep it.
            if not _existing(final, key):
                raise
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


# -- CLI ------------------------------------------------------------------------------


class _ProgressPrinter:
    """JSON progress lines on stdout, at most a few a second plus each stage's last one."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._last = 0.0
        self.stages: set[str] = set()

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.stages.add(stage)
        now = time.monotonic()
        if done < total and now - self._last < self.interval:
            return
        self._last = now
        _emit({"kind": "progress", "stage": stage, "bytes_done": done, "bytes_total": total})


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    defaults = PrepareOptions()
    p = argparse.ArgumentParser(
        prog="python -m trainer.prepare",
        description="Validate, clean, dedup, tokenize and pack JSONL corpora into token shards.",
    )
    p.add_argument("--input", action="append", required=True, help="JSONL(.gz/.zst); repeatable")
    p.add_argument("--tokenizer", help="model directory or cached hub id (not for --validate-only)")
    p.add_argument("--out", help="root directory for prepared corpora")
    p.add_argument("--text-field", default=defaults.text_field)
    p.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    p.add_argument("--max-bad-fraction", type=float, default=defaults.max_bad_fraction)
    p.add_argument("--min-chars", type=int, default=defaults.min_chars)
    p.add_argument("--max-doc-chars", type=int, default=defaults.max_doc_chars)
    p.add_argument("--near-dedup", action="store_true")
    p.add_argument("--near-dedup-threshold", type=float, default=defaults.near_dedup_threshold)
    p.add_argument("--shard-tokens", type=int, default=defaults.shard_tokens)
    p.add_argument(
        "--workers", type=int, default=None, help="processes; default 1 (Rust threads on all cores)"
    )
    p.add_argument("--report-limit", type=int, default=defaults.report_limit)
    p.add_argument("--validate-only", action="store_true", help="report only; no tokenizer")
    return p


def _validate_only(args: argparse.Namespace, options: PrepareOptions, printer) -> int:
    report = validate_corpus(
        args.input,
        text_field=options.text_field,
        max_doc_chars=options.max_doc_chars,
        min_chars=options.min_chars,
        report_limit=options.report_limit,
        progress=printer,
    )
    if report.lines - report.blank_lines == 0:
        status, code = "empty", EXIT_EMPTY
    elif report.invalid_fraction > options.max_bad_fraction:
        status, code = "rejected", EXIT_REJECTED
    else:
        status, code = "ok", 0
    _emit({"kind": "result", "status": status, "report": report.to_dict()})
    print(f"validation: {status}\n{report.summary()}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        options = PrepareOptions(
            text_field=args.text_field,
            val_fraction=args.val_fraction,
            max_bad_fraction=args.max_bad_fraction,
            min_chars=args.min_chars,
            max_doc_chars=args.max_doc_chars,
            near_dedup=args.near_dedup,
            near_dedup_threshold=args.near_dedup_threshold,
            shard_tokens=args.shard_tokens,
            workers=args.workers,
            report_limit=args.report_limit,
        )
        if not args.validate_only and (not args.tokenizer or not args.out):
            raise ValueError("--tokenizer and --out are required unless --validate-only")
        check_inputs(args.input)
    except (ValueError, FileNotFoundError) as exc:
        parser.print_usage(sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    printer = _ProgressPrinter()
    if args.validate_only:
        return _validate_only(args, options, printer)
    try:
        path = prepare_corpus(
            args.input, args.tokenizer, args.out, options=options, progress=printer
        )
    except CorpusRejected as exc:
        _emit({"kind": "result", "status": "rejected", "report": exc.report.to_dict()})
        print(str(exc), file=sys.stderr)
        return EXIT_REJECTED
    except EmptyCorpusError as exc:
        result = {"kind": "result", "status": "empty", "error": str(exc)}
        if exc.counts is not None:
            result["counts"] = exc.counts
        if exc.tokens is not None:
            result["tokens"] = exc.tokens
        _emit(result)
        print(str(exc), file=sys.stderr)
        return EXIT_EMPTY
    except ValueError as exc:  # e.g. a tokenizer that cannot be loaded
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    manifest = json.loads((path / MANIFEST_NAME).read_text(encoding="utf-8"))
    splits = manifest["splits"]
    counts = manifest["counts"]
    _emit(
        {
            "kind": "result",
            "status": "cached" if "cached" in printer.stages else "ok",
            "path": str(path),
            "key": manifest["key"],
            "counts": counts,
            "tokens": {"train": splits["train"]["tokens"], "val": splits["val"]["tokens"]},
            "seconds": manifest["seconds"],
        }
    )
    print(
        f"prepared {path}{' (cached)' if 'cached' in printer.stages else ''}\n"
        f"  documents read {counts['documents_read']}, bad {sum(counts['bad'].values())}, "
        f"duplicates {counts['duplicates']}, near duplicates {counts['near_duplicates']}, "
        f"kept {counts['kept']} (train {counts['train_documents']}, "
        f"val {counts['val_documents']})\n"
        f"  tokens train {splits['train']['tokens']}, val {splits['val']['tokens']} "
        f"({manifest['dtype']})\n{_summary_of_bad(manifest['report'])}",
        file=sys.stderr,
    )
    return 0


def _summary_of_bad(report: dict[str, Any]) -> str:
    lines = []
    for kind, n in report["bad"].items():
        first = report["bad_examples"][kind][0] if report["bad_examples"].get(kind) else None
        where = f" (first: {first['file']} line {first['line']})" if first else ""
        lines.append(f"  {kind}: {n}{where}")
    return "\n".join(lines) if lines else "  no bad lines"


if __name__ == "__main__":
    sys.exit(main())
