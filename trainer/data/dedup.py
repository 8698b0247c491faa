"""Duplicate detection across all input files.

Exact: a set of 16-byte blake2b digests of the cleaned text. A Python ``set`` of
16-byte ``bytes`` costs about 33 bytes for the object plus ~8-16 bytes of table
slot, so roughly 90-100 MB per million documents (measured figure in the bench).

Near (optional): MinHash signatures of word 5-gram shingles (computed in the
workers) and a datasketch ``MinHashLSH`` index in the main process; a document
whose estimated Jaccard similarity to an earlier one passes ``threshold`` is a
near duplicate. The index grows with the documents kept (num_perm * 8 bytes each
plus the LSH buckets).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

__all__ = ["ExactDedup", "NearDedup", "doc_digest", "minhash_signature"]

DIGEST_BYTES = 16
# datasketch's defaults, named: signatures shipped from the workers are rebuilt with them.
SCHEME = "affine32"
SEED = 1
_WORD = re.compile(r"\w+")


def doc_digest(text: str) -> bytes:
    """16-byte blake2b of the UTF-8 text: the dedup key and the split hash."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=DIGEST_BYTES).digest()


class ExactDedup:
    """Remembers digests; ``seen(d)`` is True from the second time ``d`` is offered."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, digest: bytes) -> bool:
        """True when ``digest`` was offered before; otherwise remember it."""
        if digest in self._seen:
            return True
        self._seen.add(digest)
        return False


def minhash_signature(text: str, num_perm: int = 128, shingle: int = 5) -> np.ndarray:
    """MinHash hash values of the text's word ``shingle``-grams (lower-cased)."""
    from datasketch import MinHash

    words = _WORD.findall(text.lower())
    if len(words) <= shingle:
        grams = [" ".join(words).encode("utf-8")]
    else:
        grams = [
            " ".join(words[i : i + shingle]).encode("utf-8")
            for i in range(len(words) - shingle + 1)
        ]
    m = MinHash(num_perm=num_perm, seed=SEED, scheme=SCHEME)
    m.update_batch(grams)
    return m.hashvalues


class NearDedup:
    """MinHash LSH over the documents kept so far."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128) -> None:
        from datasketch import MinHashLSH

        if not 0 < threshold <= 1:
            raise ValueError("near_dedup_threshold must be in (0, 1]")
        self.num_perm = num_perm
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._count = 0

    def seen(self, signature: np.ndarray) -> bool:
        """True when a similar document was kept before; otherwise index this one."""
        from datasketch import LeanMinHash

        m = LeanMinHash(seed=SEED, hashvalues=signature, scheme=SCHEME)
        if self._lsh.query(m):
            return True
        self._lsh.insert(self._count, m, check_duplication=False)
        self._count += 1
        return False
