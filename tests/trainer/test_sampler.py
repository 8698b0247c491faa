"""The training sampler: windows, weighted mixing, determinism, rank sharding, position."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.sampler import MixtureSampler, ValidationWindows, windows_in


def _corpora() -> list[np.ndarray]:
    # Distinct value ranges, so a window tells which corpus it came from.
    return [np.arange(0, 1000, dtype=np.uint16), np.arange(5000, 5400, dtype=np.uint16)]


def _sampler(rank: int = 0, world: int = 1, accum: int = 2, seed: int = 3, weights=(3.0, 1.0)):
    return MixtureSampler(
        _corpora(),
        list(weights),
        seq_len=8,
        micro_batch_size=2,
        grad_accum_steps=accum,
        rank=rank,
        world_size=world,
        seed=seed,
    )


def _rows(batches: list[torch.Tensor]) -> list[tuple[int, ...]]:
    return [tuple(r.tolist()) for b in batches for r in b]


def test_windows_are_seq_len_plus_one_consecutive_tokens():
    batches = _sampler().next_step()
    assert len(batches) == 2 and batches[0].shape == (2, 9)
    for row in torch.cat(batches):
        assert torch.equal(row[1:] - row[:-1], torch.ones(8, dtype=row.dtype))
        assert int(row[0]) % 8 == 0 or int(row[0]) >= 5000


def test_it_is_deterministic_from_the_seed():
    a, b, c = _sampler(seed=3), _sampler(seed=3), _sampler(seed=4)
    ra = [_rows(a.next_step()) for _ in range(5)]
    assert ra == [_rows(b.next_step()) for _ in range(5)]
    assert ra != [_rows(c.next_step()) for _ in range(5)]


def test_two_ranks_together_see_the_same_global_batch_as_one_rank():
    one = _sampler(world=1, accum=2)
    r0, r1 = _sampler(rank=0, world=2, accum=1), _sampler(rank=1, world=2, accum=1)
    for _ in range(6):
        single = _rows(one.next_step())
        split = _rows(r0.next_step()) + _rows(r1.next_step())
        assert single == split


def test_ranks_read_disjoint_windows_within_an_epoch():
    r0, r1 = _sampler(rank=0, world=2, accum=1), _sampler(rank=1, world=2, accum=1)
    seen0 = {row for _ in range(10) for row in _rows(r0.next_step())}
    seen1 = {row for _ in range(10) for row in _rows(r1.next_step())}
    assert not seen0 & seen1


def test_corpora_are_mixed_by_weight():
    s = _sampler(weights=(3.0, 1.0))
    rows = [row for _ in range(250) for row in _rows(s.next_step())]
    share = sum(1 for r in rows if r[0] >= 5000) / len(rows)
    assert share == pytest.approx(0.25, abs=0.04)


def test_every_window_is_visited_once_per_epoch_then_reshuffled():
    s = MixtureSampler(
        [np.arange(0, 81, dtype=np.uint16)], [1.0], seq_len=8, micro_batch_size=2,
        grad_accum_steps=1, rank=0, world_size=1, seed=0,
    )  # fmt: skip
    assert s.windows == [windows_in(81, 8)] == [10]
    epoch1 = [r[0] for _ in range(5) for r in _rows(s.next_step())]
    epoch2 = [r[0] for _ in range(5) for r in _rows(s.next_step())]
    assert sorted(epoch1) == sorted(epoch2) == list(range(0, 80, 8))
    assert epoch1 != epoch2


def test_a_restored_position_continues_the_same_sequence():
    a = _sampler()
    for _ in range(7):
        a.next_step()
    b = _sampler()
    b.load_state_dict(a.state_dict())
    assert [_rows(a.next_step()) for _ in range(3)] == [_rows(b.next_step()) for _ in range(3)]


def test_a_position_from_other_corpora_is_refused():
    a = _sampler()
    state = a.state_dict() | {"windows": [1, 2]}
    with pytest.raises(ValueError, match="corpora or seq_len changed"):
        _sampler().load_state_dict(state)


def test_a_corpus_shorter_than_one_window_names_its_index():
    with pytest.raises(ValueError, match=r"data\.corpora\.1"):
        MixtureSampler(
            [np.arange(100, dtype=np.uint16), np.arange(5, dtype=np.uint16)], [1.0, 1.0],
            seq_len=8, micro_batch_size=1, grad_accum_steps=1, rank=0, world_size=1, seed=0,
        )  # fmt: skip


def test_validation_windows_interleave_corpora_and_wrap_around():
    val = ValidationWindows(_corpora(), seq_len=100)
    assert len(val) == 9 + 3
    first = val.batch(0, 2)
    assert int(first[0, 0]) == 0 and int(first[1, 0]) == 5000
    assert torch.equal(val.batch(6, 2), val.batch(0, 2))  # 12 windows, 2 per batch
