"""TrainConfig: validation names the field; the train CLI refuses a bad config up front."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.trainer.train_helpers import ROOT, child_env, run_config, write_config
from trainer.config import ConfigError, check_paths, dump_config, load_config, parse_config


def _cfg(**overrides):
    return run_config(ROOT / "no-model", [(ROOT / "no-corpus", 1.0)], **overrides)


def test_it_accepts_a_complete_config_and_round_trips_it_through_yaml(tmp_path):
    cfg = parse_config(_cfg())
    path = tmp_path / "run.yaml"
    path.write_text(dump_config(cfg), encoding="utf-8")
    assert load_config(path) == cfg
    assert cfg.tokens_per_step() == 32 * 2 * 2 * 2


def test_it_loads_json_too(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_cfg()), encoding="utf-8")
    assert load_config(path).data.seq_len == 32


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"optim.lr": -1.0}, "optim.lr"),
        ({"optim.beta2": 1.5}, "optim.beta2"),
        ({"data.seq_len": 4}, "data.seq_len"),
        ({"schedule.kind": "exponential"}, "schedule.kind"),
        ({"checkpoint.keep": 1}, "checkpoint.keep"),
        ({"data.corpora": [{"path": "x", "weight": 0}]}, "data.corpora.0.weight"),
        ({"schedule.warmup_steps": 50}, "schedule.warmup_steps"),
    ],
)
def test_it_names_the_bad_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        parse_config(_cfg(**overrides))
    assert field in err.value.errors, err.value.errors


def test_it_rejects_unknown_fields():
    cfg = _cfg()
    cfg["optim"]["learning_rate"] = 1e-3
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert "optim.learning_rate" in err.value.errors


def test_it_reports_a_corpus_without_a_manifest(tmp_path):
    cfg = parse_config(_cfg(**{"data.corpora": [{"path": str(tmp_path)}]}))
    with pytest.raises(ConfigError) as err:
        check_paths(cfg)
    assert "data.corpora.0.path" in err.value.errors


def test_the_train_cli_refuses_a_bad_config_before_starting_anything(tmp_path):
    config = write_config(tmp_path / "bad.yaml", _cfg(**{"optim.lr": 0}))
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.train", "--config", str(config), "--run-dir", str(run_dir)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "optim.lr" in proc.stderr
    # Nothing ran: no run directory, no events, no process group.
    assert not run_dir.exists()
