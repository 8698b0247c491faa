"""Learning-rate schedules and AdamW parameter groups."""

from __future__ import annotations

import pytest
import torch

from trainer.config import OptimConfig, ScheduleConfig
from trainer.optim import build_optimizer, build_scheduler, lr_factor, param_groups


def _factors(kind: str, total: int = 100, warmup: int = 10, **kw) -> list[float]:
    cfg = ScheduleConfig(kind=kind, warmup_steps=warmup, total_steps=total, min_lr_ratio=0.1, **kw)
    return [lr_factor(s, cfg, total) for s in range(total)]


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant", "wsd"])
def test_warmup_rises_linearly_from_a_nonzero_first_step(kind):
    f = _factors(kind)
    assert f[0] == pytest.approx(0.1)
    assert f[4] == pytest.approx(0.5)
    assert f[9] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_decays_monotonically_to_the_min_ratio_on_the_last_step(kind):
    f = _factors(kind)
    tail = f[10:]
    assert all(a >= b for a, b in zip(tail, tail[1:], strict=False))
    assert tail[0] == pytest.approx(1.0)
    assert tail[-1] == pytest.approx(0.1)


def test_cosine_is_halfway_at_the_middle_of_the_decay():
    cfg = ScheduleConfig(kind="cosine", warmup_steps=0, total_steps=101, min_lr_ratio=0.0)
    assert lr_factor(50, cfg, 101) == pytest.approx(0.5)


def test_constant_stays_at_peak():
    assert set(_factors("constant")[10:]) == {1.0}


def test_wsd_is_stable_then_decays_over_the_last_fraction():
    f = _factors("wsd", decay_fraction=0.2)
    assert set(f[10:80]) == {1.0}
    assert f[80] < 1.0
    assert f[-1] == pytest.approx(0.1)


def test_the_scheduler_steps_the_optimizer_lr_per_step():
    model = torch.nn.Linear(4, 4)
    opt = build_optimizer(model, OptimConfig(lr=1.0), torch.device("cpu"))
    sched = build_scheduler(opt, ScheduleConfig(kind="linear", warmup_steps=2, total_steps=10), 10)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[:2] == pytest.approx([0.5, 1.0])
    assert seen[-1] == pytest.approx(0.1)


def test_norms_and_biases_get_no_weight_decay():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {p.shape for p in decay["params"]} == {torch.Size([8, 4]), torch.Size([2, 8])}
    assert len(no_decay["params"]) == 4  # two biases, the norm's weight and bias
