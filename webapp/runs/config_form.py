"""Django form fields generated from the trainer's config schema (``trainer.config.TrainConfig``).

One source of truth: every field's type, default, help text and HTML bounds come
from the pydantic schema; the server-side check is the trainer's own
``parse_config``, whose dotted error names (``optim.lr``) are mapped back onto
these fields. Form field names are the dotted names with ``__`` for the dots
(``optim__lr``) so they are valid HTML ids and template lookups.

Two schema fields are not typed in by hand: ``model.path`` comes from a
registered base model and ``data.corpora`` from the chosen datasets and weights.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types as at
from django import forms
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from trainer.config import TrainConfig

# Form groups in page order; sections name theirs in json_schema_extra["group"].
GROUPS: list[tuple[str, str]] = [
    ("run", "Run"),
    ("model", "Model"),
    ("data", "Data"),
    ("optimization", "Optimization"),
    ("schedule", "Schedule"),
    ("parallelism", "Parallelism"),
    ("checkpoints", "Checkpoints"),
    ("evaluation", "Evaluation"),
]
# Chosen from registered objects by the run form instead of typed in.
EXCLUDED = frozenset({"model.path", "data.corpora"})
LABELS = {"parallel.nproc_per_node": "Number of GPUs"}


@dataclass(frozen=True)
class SchemaField:
    """One scalar config field: its dotted path, form name, group and pydantic info."""

    dotted: str
    group: str
    info: FieldInfo

    @property
    def name(self) -> str:
        """The form field name (``optim__lr``)."""
        return self.dotted.replace(".", "__")


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def schema_fields() -> list[SchemaField]:
    """Every scalar field of TrainConfig in schema order (excluding :data:`EXCLUDED`)."""
    out: list[SchemaField] = []
    for name, info in TrainConfig.model_fields.items():
        if _is_section(info.annotation):
            section = info.annotation
            extra = section.model_config.get("json_schema_extra") or {}
            group = extra.get("group", name) if isinstance(extra, dict) else name
            for sub, sub_info in section.model_fields.items():
                dotted = f"{name}.{sub}"
                if dotted not in EXCLUDED:
                    out.append(SchemaField(dotted, group, sub_info))
        elif name not in EXCLUDED:
            out.append(SchemaField(name, "run", info))
    return out


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _bounds(info: FieldInfo) -> dict[str, Any]:
    """HTML attributes from the schema's bounds (exclusive ones are left to the server)."""
    attrs: dict[str, Any] = {}
    for m in info.metadata:
        if isinstance(m, at.Ge):
            attrs["min"] = m.ge
        elif isinstance(m, at.Le):
            attrs["max"] = m.le
        elif isinstance(m, at.MaxLen):
            attrs["maxlength"] = m.max_length
    return attrs


def default_of(info: FieldInfo) -> Any:
    """The field's schema default, or None when it has none."""
    if info.default is not PydanticUndefined:
        return info.default
    return None


def form_field(sf: SchemaField) -> forms.Field:
    """A Django field for one schema field; values are only parsed here, checked by the trainer."""
    info = sf.info
    annotation, optional = _unwrap_optional(info.annotation)
    common: dict[str, Any] = {
        "label": LABELS.get(sf.dotted, sf.dotted.split(".")[-1].replace("_", " ").capitalize()),
        "help_text": info.description or "",
        "initial": default_of(info),
        "required": not optional,
    }
    attrs = _bounds(info)
    if typing.get_origin(annotation) is Literal:
        choices = [(c, c) for c in typing.get_args(annotation)]
        return forms.ChoiceField(choices=choices, **common)
    if annotation is bool:
        common["required"] = False
        return forms.BooleanField(**common)
    if annotation is int:
        return forms.IntegerField(widget=forms.NumberInput(attrs=attrs), **common)
    if annotation is float:
        return forms.FloatField(widget=forms.NumberInput(attrs={"step": "any", **attrs}), **common)
    if annotation is str:
        return forms.CharField(widget=forms.TextInput(attrs=attrs), strip=True, **common)
    raise TypeError(f"{sf.dotted}: no form field for {annotation!r}")


def set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    """``set_dotted(d, "optim.lr", 1e-4)`` -> ``d["optim"]["lr"] = 1e-4``."""
    *parents, leaf = dotted.split(".")
    for p in parents:
        target = target.setdefault(p, {})
    target[leaf] = value


def get_dotted(source: dict[str, Any], dotted: str) -> Any:
    """The value at ``dotted`` in nested dicts, or None."""
    value: Any = source
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def config_from_fields(cleaned: dict[str, Any]) -> dict[str, Any]:
    """Nested config dict from cleaned form values (the excluded fields are added by the caller)."""
    config: dict[str, Any] = {}
    for sf in schema_fields():
        if sf.name in cleaned:
            set_dotted(config, sf.dotted, cleaned[sf.name])
    return config


def initial_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """Form initial values from a (possibly partial) config dict; missing keys keep defaults."""
    initial: dict[str, Any] = {}
    for sf in schema_fields():
        value = get_dotted(config, sf.dotted)
        if value is not None or get_dotted_present(config, sf.dotted):
            initial[sf.name] = value
    return initial


def get_dotted_present(source: dict[str, Any], dotted: str) -> bool:
    """Whether ``dotted`` is present in ``source`` (even when its value is None)."""
    *parents, leaf = dotted.split(".")
    for p in parents:
        source = source.get(p) if isinstance(source, dict) else None
        if not isinstance(source, dict):
            return False
    return leaf in source


def field_for_error(dotted: str, names: set[str]) -> str | None:
    """The form field an error ``dotted`` name belongs to (a section's first field for a
    section-level error), or None for a form-wide error."""
    name = dotted.replace(".", "__")
    if name in names:
        return name
    for sf in schema_fields():
        if sf.dotted.startswith(dotted + "."):
            return sf.name
    return None
