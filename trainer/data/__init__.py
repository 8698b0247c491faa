"""The data side of the trainer, in small steps used by :mod:`trainer.prepare`.

- :mod:`.reading`: streaming, decompressing line reader (plain, .gz, .zst) and file hashing.
- :mod:`.cleaning`: Unicode normalization and control-character removal.
- :mod:`.validation`: one JSONL line -> text or a bad-line kind; the validation report.
- :mod:`.dedup`: exact (blake2b) and near (MinHash LSH) duplicate detection.
- :mod:`.tokenize`: the tokenizer identity and the per-chunk worker (validate, clean, tokenize).
- :mod:`.packing`: the deterministic train/val split and the bounded-size shard writer.
"""
