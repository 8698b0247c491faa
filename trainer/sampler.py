"""Training windows from packed token shards: weighted mixing, deterministic, sharded.

Each corpus's train split is cut into windows of ``seq_len + 1`` tokens starting
every ``seq_len`` tokens (input = window[:-1], labels = window[1:]), so every token
is a target once per epoch. Within a corpus the windows are visited in a random
permutation that is reshuffled per epoch.

Which corpus each of a step's ``G`` samples (``G`` = micro_batch * grad_accum *
world_size, the global batch) comes from is drawn from ``(seed, step)`` alone,
with the corpus weights. All ranks make the same draws for the whole global batch
and each reads only its own slice, so the global batch of a step does not depend
on how it is split across ranks: the same run on 1 or 2 ranks (equal ``G``) sees
the same windows. The position (next step, windows drawn per corpus) is the
sampler state saved in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["MixtureSampler", "ValidationWindows", "windows_in"]

# Separates the permutation streams from the per-step corpus draws.
_PERM_STREAM = 1_000_003


def windows_in(num_tokens: int, seq_len: int) -> int:
    """Whole windows of ``seq_len + 1`` tokens, starting every ``seq_len`` tokens."""
    return max(0, (num_tokens - 1) // seq_len)


def _read_windows(array: Any, starts: Sequence[int], seq_len: int) -> torch.Tensor:
    rows = [np.asarray(array[s : s + seq_len + 1], dtype=np.int64) for s in starts]
    return torch.from_numpy(np.stack(rows))


class MixtureSampler:
    """Deterministic weighted mixture of corpora, sharded across data-parallel ranks."""

    def __init__(
        self,
        arrays: Sequence[Any],
        weights: Sequence[float],
        *,
        seq_len: int,
        micro_batch_size: int,
        grad_accum_steps: int,
        rank: int,
        world_size: int,
        seed: int,
        names: Sequence[str] | None = None,
    ) -> None:
        if len(arrays) != len(weights) or not arrays:
            raise ValueError("need one weight per corpus and at least one corpus")
        self.arrays = list(arrays)
        self.seq_len = seq_len
        self.micro_batch_size = micro_batch_size
        self.grad_accum_steps = grad_accum_steps
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.global_batch = micro_batch_size * grad_accum_steps * world_size
        self.windows = [windows_in(len(a), seq_len) for a in self.arrays]
        for i, n in enumerate(self.windows):
            if n == 0:
                label = names[i] if names else f"corpus {i}"
                raise ValueError(
                    f"data.corpora.{i}: {label} has {len(self.arrays[i])} train tokens, "
                    f"fewer than one window of seq_len+1 = {seq_len + 1}"
                )
        total = float(sum(weights))
        self.probs = np.array([w / total for w in weights], dtype=np.float64)
        self.step = 0
        self.drawn = [0] * len(self.arrays)
        self._perm_cache: dict[int, tuple[int, np.ndarray]] = {}

    def _permutation(self, corpus: int, epoch: int) -> np.ndarray:
        cached = self._perm_cache.get(corpus)
        if cached is None or cached[0] != epoch:
            rng = np.random.default_rng([self.seed, _PERM_STREAM + corpus, epoch])
            cached = (epoch, rng.permutation(self.windows[corpus]))
            self._perm_cache[corpus] = cached
        return cached[1]

    def _corpus_draws(self, step: int) -> np.ndarray:
        if len(self.arrays) == 1:
            return np.zeros(self.global_batch, dtype=np.int64)
        rng = np.random.default_rng([self.seed, step])
        return rng.choice(len(self.arrays), size=self.global_batch, p=self.probs)

    def next_step(self) -> list[torch.Tensor]:
        """This rank's ``grad_accum_steps`` micro-batches for the next step, each [mb, seq_len+1]."""
        draws = self._corpus_draws(self.step)
        per_rank = self.micro_batch_size * self.grad_accum_steps
        lo, hi = self.rank * per_rank, (self.rank + 1) * per_rank
        mine: list[tuple[int, int]] = []
        for j, corpus in enumerate(draws.tolist()):
            n = self.drawn[corpus]
            self.drawn[corpus] = n + 1
            if lo <= j < hi:
                epoch, k = divmod(n, self.windows[corpus])
                window = int(self._permutation(corpus, epoch)[k])
                mine.append((corpus, window * self.seq_len))
        self.step += 1
        batches = []
        mb = self.micro_batch_size
        for m in range(self.grad_accum_steps):
            part = mine[m * mb : (m + 1) * mb]
            rows = [_read_windows(self.arrays[c], [start], self.seq_len)[0] for c, start in part]
            batches.append(torch.stack(rows))
        return batches

    def state_dict(self) -> dict[str, Any]:
        """The position: next step and windows drawn per corpus (plus checks)."""
        return {
            "step": self.step,
            "drawn": list(self.drawn),
            "windows": list(self.windows),
            "global_batch": self.global_batch,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position; the corpora must be the same ones."""
        if list(state["windows"]) != self.windows:
            raise ValueError(
                f"checkpoint sampler saw {list(state['windows'])} windows per corpus, "
                f"the configured corpora have {self.windows}: corpora or seq_len changed"
            )
        self.step = int(state["step"])
        self.drawn = [int(n) for n in state["drawn"]]


class ValidationWindows:
    """A fixed list of validation windows (corpora interleaved), the same at every eval."""

    def __init__(self, arrays: Sequence[Any], *, seq_len: int) -> None:
        self.arrays = list(arrays)
        self.seq_len = seq_len
        counts = [windows_in(len(a), seq_len) for a in self.arrays]
        self.items: list[tuple[int, int]] = []
        for i in range(max(counts, default=0)):
            for c, n in enumerate(counts):
                if i < n:
                    self.items.append((c, i * seq_len))

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, index: int, micro_batch_size: int) -> torch.Tensor:
        """Micro-batch ``index`` (wrapping around the list), [mb, seq_len+1]."""
        rows = []
        for i in range(micro_batch_size):
            c, start = self.items[(index * micro_batch_size + i) % len(self.items)]
            rows.append(_read_windows(self.arrays[c], [start], self.seq_len)[0])
        return torch.stack(rows)
