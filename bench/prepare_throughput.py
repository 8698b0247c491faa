"""End-to-end throughput of trainer.prepare on a real corpus built from this machine.

Builds >= 50 MB of JSONL from the Python standard library's source files (one
document per .py file, repeated with the repetition index in the text so dedup
keeps every copy), trains a byte-level BPE tokenizer (vocab 32k) on a sample
(not timed), then times ``prepare_corpus`` (read, validate, clean, dedup,
tokenize, pack, write) for each ``--workers`` setting and prints tokens/s per
core, both per wall-clock core (tokens / wall / cores) and per CPU-second
(tokens / CPU seconds used, which stays meaningful on a shared machine).
``--profile`` also times each stage alone in one process, to show where time goes;
``--dedup-memory`` measures the exact-dedup set's memory per million documents.

    .venv/bin/python bench/prepare_throughput.py [--mb 50] [--workers 1,2] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import sysconfig
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.demo import build_tokenizer  # noqa: E402
from trainer.prepare import PrepareOptions, prepare_corpus  # noqa: E402


def stdlib_sources() -> list[str]:
    """Texts of the standard library's .py files (tests and site-packages excluded)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for path in sorted(root.rglob("*.py")):
        parts = set(path.relative_to(root).parts)
        if "site-packages" in parts or "dist-packages" in parts:
            continue
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    return texts


def build_corpus(path: Path, target_bytes: int) -> tuple[int, int]:
    """Write JSONL until ``target_bytes``; returns (documents, bytes)."""
    sources = stdlib_sources()
    if not sources:
        raise SystemExit("no standard-library sources found")
    written = docs = rep = 0
    with path.open("w", encoding="utf-8") as f:
        while written < target_bytes:
            for text in sources:
                # The repetition index makes each copy a distinct document for exact dedup.
                line = json.dumps({"text": f"# copy {rep}\n{text}"}, ensure_ascii=False) + "\n"
                f.write(line)
                written += len(line.encode("utf-8"))
                docs += 1
                if written >= target_bytes:
                    break
            rep += 1
    return docs, written


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_prepare(corpus: Path, tok_dir: Path, out: Path, workers: int) -> dict:
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    path = prepare_corpus([corpus], tok_dir, out, options=PrepareOptions(workers=workers))
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    manifest = json.loads((path / "manifest.json").read_text())
    tokens = manifest["splits"]["train"]["tokens"] + manifest["splits"]["val"]["tokens"]
    return {
        "workers": workers,
        "cores": cores(),
        "tokens": tokens,
        "documents_kept": manifest["counts"]["kept"],
        "duplicates": manifest["counts"]["duplicates"],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "tokens_per_s": round(tokens / wall),
        "tokens_per_s_per_core_wall": round(tokens / wall / cores()),
        "tokens_per_s_per_cpu_second": round(tokens / cpu),
    }


def profile_stages(corpus: Path, tok_dir: Path, limit_bytes: int) -> dict:
    """Each stage alone, one process, on the first ``limit_bytes`` of the corpus."""
    from tokenizers import Tokenizer

    from trainer.data.dedup import doc_digest
    from trainer.data.reading import iter_line_chunks
    from trainer.data.validation import LineChecker

    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    out: dict[str, float] = {}
    t = time.perf_counter()
    lines: list[bytes] = []
    for chunk in iter_line_chunks(corpus):
        lines.extend(chunk.lines)
        if sum(map(len, lines)) >= limit_bytes:
            break
    out["read_s"] = time.perf_counter() - t
    checker = LineChecker()
    t = time.perf_counter()
    texts = [checker.check(raw)[0] for raw in lines]
    out["parse_clean_s"] = time.perf_counter() - t
    texts = [x for x in texts if x]
    t = time.perf_counter()
    for x in texts:
        doc_digest(x)
    out["hash_s"] = time.perf_counter() - t
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    t = time.perf_counter()
    encs = []
    for i in range(0, len(texts), 256):
        encs.extend(
            e.ids for e in tok.encode_batch_fast(texts[i : i + 256], add_special_tokens=False)
        )
    out["tokenize_s"] = time.perf_counter() - t
    import numpy as np

    t = time.perf_counter()
    flat = np.concatenate([np.array(e, dtype=np.uint16) for e in encs])
    n = len(flat)
    out["to_numpy_s"] = time.perf_counter() - t
    with tempfile.TemporaryFile() as f:
        t = time.perf_counter()
        f.write(flat.tobytes())
        out["write_s"] = time.perf_counter() - t
    total = sum(out.values())
    result = {k: round(v, 3) for k, v in out.items()}
    result["tokens"] = n
    result["bytes"] = sum(map(len, lines))
    result["tokens_per_s_one_core"] = round(n / total)
    result["share"] = {k: f"{v / total:.0%}" for k, v in out.items()}
    return result


def dedup_memory(n: int = 1_000_000) -> dict:
    """Bytes the exact-dedup set holds per million documents."""
    from trainer.data.dedup import ExactDedup

    tracemalloc.start()
    d = ExactDedup()
    for i in range(n):
        d.seen(i.to_bytes(16, "little"))
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"documents": n, "mb_per_million_docs": round(current / 1e6 * 1_000_000 / n, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50, help="corpus size in MB (>= 50)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--profile", action="store_true", help="time each stage alone")
    parser.add_argument("--dedup-memory", action="store_true")
    parser.add_argument("--workdir", help="keep files here instead of a temp dir")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="prepare-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "stdlib.jsonl"
    if not corpus.exists() or corpus.stat().st_size < args.mb * 1e6:
        docs, size = build_corpus(corpus, int(args.mb * 1e6))
    else:
        docs, size = sum(1 for _ in corpus.open("rb")), corpus.stat().st_size
    print(json.dumps({"corpus": str(corpus), "documents": docs, "bytes": size}), flush=True)
    tok_dir = work / "tokenizer-32k"
    if not (tok_dir / "tokenizer.json").exists():
        t = time.perf_counter()
        sample = stdlib_sources()[:1500]
        build_tokenizer(tok_dir, sample, vocab_size=32000)
        print(json.dumps({"tokenizer_trained_s": round(time.perf_counter() - t, 1)}), flush=True)
    for w in [int(x) for x in args.workers.split(",")]:
        out = work / f"out-w{w}"
        shutil.rmtree(out, ignore_errors=True)  # measure the work, not the cache
        result = run_prepare(corpus, tok_dir, out, w)
        print(json.dumps({"prepare": result}), flush=True)
    if args.profile:
        print(json.dumps({"profile": profile_stages(corpus, tok_dir, 20_000_000)}), flush=True)
    if args.dedup_memory:
        print(json.dumps({"dedup_memory": dedup_memory()}), flush=True)


if __name__ == "__main__":
    main()
