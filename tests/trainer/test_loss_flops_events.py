"""Chunked cross-entropy, the MFU formula and the events writer."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from trainer import loss as loss_mod
from trainer.events import EventWriter, read_events
from trainer.flops import flops_per_token, mfu, peak_flops


def test_chunked_cross_entropy_matches_plain_cross_entropy_and_its_gradients(monkeypatch):
    monkeypatch.setattr(loss_mod, "_CHUNK_ELEMENTS", 50 * 7)  # 7 tokens a chunk: several chunks
    torch.manual_seed(0)
    hidden = torch.randn(3, 10, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 50, (3, 10))
    labels[0, :4] = loss_mod.IGNORE_INDEX
    ours = loss_mod.chunked_linear_cross_entropy(hidden, weight, labels)
    gh, gw = torch.autograd.grad(ours * 2.0, (hidden, weight))
    ref = F.cross_entropy(
        (hidden @ weight.t()).reshape(-1, 50), labels.reshape(-1), reduction="sum"
    )
    rh, rw = torch.autograd.grad(ref * 2.0, (hidden, weight))
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(gh, rh, atol=1e-6) and torch.allclose(gw, rw, atol=1e-6)


def test_chunked_cross_entropy_runs_without_grad():
    with torch.no_grad():
        out = loss_mod.chunked_linear_cross_entropy(
            torch.randn(2, 4, 8), torch.randn(11, 8), torch.randint(0, 11, (2, 4))
        )
    assert out.shape == () and out > 0


def test_flops_per_token_follows_the_torchtitan_convention(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    c = model.config
    n = sum(p.numel() for p in model.parameters()) - c.vocab_size * c.hidden_size
    head_dim = c.hidden_size // c.num_attention_heads
    expected = 6 * n + 12 * c.num_hidden_layers * c.num_attention_heads * head_dim * 32
    assert flops_per_token(model, 32) == expected


def test_mfu_is_absent_on_cpu_and_a_ratio_against_the_peak():
    assert peak_flops(torch.device("cpu")) is None
    assert mfu(1000.0, 1e9, None) is None
    assert mfu(1000.0, 1e9, 1e13, world_size=2) == pytest.approx(0.05)


def test_events_are_schema_v1_lines_and_non_finite_numbers_become_null(tmp_path):
    w = EventWriter(tmp_path)
    w.status("running", "started", step=0)
    w.metric(3, {"loss": float("nan"), "lr": 1e-3})
    # Flushed per line: readable before close.
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(x)["kind"] for x in lines] == ["status", "metric"]
    w.eval(3, 2.0, 7.389)
    w.close()
    events = read_events(tmp_path)
    assert all(e["v"] == 1 and "t" in e for e in events)
    assert events[1] == {**events[1], "step": 3, "data": {"loss": None, "lr": 1e-3}}
    assert events[2]["data"] == {"val_loss": 2.0, "val_ppl": 7.389}


def test_a_writer_on_other_ranks_writes_nothing(tmp_path):
    w = EventWriter(tmp_path / "run", enabled=False)
    w.status("running")
    assert not (tmp_path / "run").exists()
