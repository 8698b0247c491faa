"""The README's config reference is the schema's, and its two commands exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _reference() -> str:
    spec = importlib.util.spec_from_file_location(
        "config_reference", ROOT / "scripts" / "config_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference()


def test_the_readme_config_reference_matches_the_schema():
    ref = _reference()
    assert "`optim.lr`" in ref and "`data.corpora[].weight`" in ref
    assert ref in README, "README config reference is stale: rerun scripts/config_reference.py"


def test_the_readme_gives_the_start_and_test_commands_that_ci_runs():
    assert "bash scripts/start.sh" in README
    assert "bash scripts/test.sh" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
