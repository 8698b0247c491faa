"""Print the run-config reference (markdown) from trainer.config.TrainConfig.

The README's "Config reference" section is this script's output; a test checks
that they agree, so the documentation cannot drift from the schema.
Usage: .venv/bin/python scripts/config_reference.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import BaseModel  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402

from trainer.config import CorpusSpec, TrainConfig  # noqa: E402


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        return f"`{field.default!r}`" if field.default is not None else "`None`"
    if field.default_factory is not None:
        return "(section)"
    return "**required**"


def _type(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return " \\| ".join(str(a) for a in get_args(annotation))
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("trainer.config.", "").replace("|", "or")


def rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    """One table row per leaf field, nested sections flattened to dotted names."""
    out: list[str] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        dotted = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(rows(ann, dotted + "."))
            continue
        desc = (field.description or "").replace("|", "\\|")
        out.append(f"| `{dotted}` | {_type(ann)} | {_default(field)} | {desc} |")
        if dotted == "data.corpora":
            out.extend(rows(CorpusSpec, "data.corpora[].")[0:])
    return out


def reference() -> str:
    head = "| field | type | default | meaning |\n|---|---|---|---|"
    return head + "\n" + "\n".join(rows(TrainConfig)) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
