"""The new-run form and the YAML import form.

:class:`RunForm` holds the schema-generated fields (``config_form.py``) plus the
choices the schema leaves to the app: the base model (``model.path``) and the
datasets with their mixing weights (``data.corpora`` as ``dataset://<id>``). Its
``clean`` runs the trainer's ``parse_config`` and puts each error next to its field.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from django import forms

from trainer.config import DATASET_PLACEHOLDER, ConfigError, TrainConfig, parse_config
from webapp.accounts.permissions import visible_to
from webapp.basemodels.models import BaseModel
from webapp.basemodels.probe import ModelCheckError, check_model_root, is_local_source
from webapp.datasets.models import Dataset
from webapp.runs import config_form

MAX_YAML_BYTES = 256 * 1024
DATASET_REF = re.compile(r"^dataset://(\d+)$")


def weight_field_name(dataset_id: int) -> str:
    """Form field holding one dataset's mixing weight."""
    return f"weight_{dataset_id}"


class RunForm(forms.Form):
    """Every TrainConfig field, grouped, plus base model, datasets and weights."""

    base_model = forms.ModelChoiceField(
        queryset=BaseModel.objects.none(),
        help_text="A registered base model (Models page); becomes model.path.",
    )
    datasets = forms.ModelMultipleChoiceField(
        queryset=Dataset.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Ready datasets to mix; each one's weight sets its share of the samples.",
    )

    def __init__(self, user, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.config: TrainConfig | None = None
        self.fields["base_model"].queryset = visible_to(user, BaseModel.objects.all())
        ready = visible_to(user, Dataset.objects.filter(state=Dataset.State.READY))
        self.fields["datasets"].queryset = ready.order_by("pk")
        self.dataset_rows = list(ready.order_by("pk"))
        for d in self.dataset_rows:
            self.fields[weight_field_name(d.pk)] = forms.FloatField(
                required=False,
                initial=1.0,
                label=f"Weight of {d.name}",
                help_text="Relative sampling weight (data.corpora.N.weight).",
                widget=forms.NumberInput(attrs={"step": "any"}),
            )
        self.schema = config_form.schema_fields()
        for sf in self.schema:
            self.fields[sf.name] = config_form.form_field(sf)

    # -- layout helpers for the template --------------------------------------------
    def groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        """(label, bound fields) per group, in page order; model/data choices lead their groups."""
        by_group: dict[str, list[forms.BoundField]] = {key: [] for key, _ in config_form.GROUPS}
        by_group["model"].append(self["base_model"])
        for sf in self.schema:
            by_group.setdefault(sf.group, []).append(self[sf.name])
        labels = dict(config_form.GROUPS)
        return [(labels.get(k, k.title()), fields) for k, fields in by_group.items() if fields]

    def dataset_choices(self) -> list[tuple[Dataset, forms.BoundField, bool]]:
        """(dataset, weight field, selected) for the data group's mixing table."""
        selected = {str(v) for v in (self["datasets"].value() or [])}
        return [
            (d, self[weight_field_name(d.pk)], str(d.pk) in selected) for d in self.dataset_rows
        ]

    # -- validation -------------------------------------------------------------------
    def clean_base_model(self) -> BaseModel:
        """The chosen model, its folder checked against ``BASE_MODEL_ROOTS`` again (the
        setting may have narrowed since it was registered). Hub models live in the local
        Hugging Face cache, which registration never held to the roots either."""
        model = self.cleaned_data["base_model"]
        if is_local_source(model.source):
            try:
                check_model_root(model.path)
            except ModelCheckError as exc:
                raise forms.ValidationError(f"{model.name}: {exc}; register it there") from None
        return model

    def selected_datasets(self) -> list[tuple[Dataset, float]]:
        """Chosen datasets (by id order) with their weights (1.0 when left blank)."""
        chosen = sorted(self.cleaned_data.get("datasets") or [], key=lambda d: d.pk)
        out = []
        for d in chosen:
            w = self.cleaned_data.get(weight_field_name(d.pk))
            out.append((d, 1.0 if w is None else w))
        return out

    def build_config(self) -> dict[str, Any]:
        """The config dict the form describes (validated by :meth:`clean`)."""
        config = config_form.config_from_fields(self.cleaned_data)
        model = self.cleaned_data.get("base_model")
        config_form.set_dotted(config, "model.path", model.path if model else "")
        corpora = [
            {"path": f"{DATASET_PLACEHOLDER}{d.pk}", "weight": w, "name": d.name}
            for d, w in self.selected_datasets()
        ]
        config_form.set_dotted(config, "data.corpora", corpora)
        return config

    def clean(self) -> dict[str, Any]:
        """Run the trainer's ``parse_config`` even when some fields did not parse, so one
        submit reports every error (a field that did not parse is left out of the config
        and takes its schema default there; see :meth:`_add_config_errors`)."""
        cleaned = super().clean()
        failed = set(self.errors)
        try:
            config = parse_config(self.build_config())
        except ConfigError as exc:
            self._add_config_errors(exc.errors, failed)
        else:
            if not failed:
                self.config = config
        return cleaned

    def _field_for_config_error(self, dotted: str) -> str | None:
        """The form field a ``ConfigError`` name belongs to, or None for a form-wide error."""
        if dotted == "model.path" or dotted == "model":
            return "base_model"
        if dotted.startswith("data.corpora"):
            parts = dotted.split(".")
            if len(parts) >= 4 and parts[2].isdigit() and parts[3] == "weight":
                chosen = self.selected_datasets()
                index = int(parts[2])
                if index < len(chosen):
                    return weight_field_name(chosen[index][0].pk)
            return "datasets"
        return config_form.field_for_error(dotted, set(self.fields))

    def _add_config_errors(self, errors: dict[str, str], failed: set[str] = frozenset()) -> None:
        """Put each config error next to its field, skipping what ``failed`` already explains.

        ``failed`` holds the fields whose own check failed: they already show one message,
        and a config error about them (or a cross-field one naming them, like warmup_steps
        against total_steps) was computed from a stand-in value, so it would be noise.
        """
        for dotted, message in errors.items():
            field = self._field_for_config_error(dotted)
            if field in failed or self._names_failed_field(message, failed):
                continue
            if field is not None and message in self.errors.get(field, []):
                continue  # e.g. two corpora with the same fault: say it once
            self.add_error(field, f"{dotted}: {message}" if field is None else message)

    @staticmethod
    def _names_failed_field(message: str, failed: set[str]) -> bool:
        """Whether ``message`` mentions a field (by its dotted name) that did not parse."""
        words = {w.strip(".,;:()'\"") for w in message.split()}
        return any(name.replace("__", ".") in words for name in failed)


def initial_for_config(user, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """RunForm initial values from a config dict (clone, YAML import) and warnings about
    what could not be matched to this user's base models and datasets."""
    initial = config_form.initial_from_config(config)
    warnings: list[str] = []
    model_path = config_form.get_dotted(config, "model.path")
    if model_path:
        models = visible_to(user, BaseModel.objects.all())
        match = models.filter(path=model_path).first() or models.filter(source=model_path).first()
        if match:
            initial["base_model"] = match.pk
        else:
            warnings.append(
                f"model.path {model_path!r} is not a registered base model: choose one."
            )
    corpora = config_form.get_dotted(config, "data.corpora") or []
    ready = visible_to(user, Dataset.objects.filter(state=Dataset.State.READY))
    chosen: list[int] = []
    for i, corpus in enumerate(corpora if isinstance(corpora, list) else []):
        path = str(corpus.get("path", "")) if isinstance(corpus, dict) else ""
        m = DATASET_REF.match(path)
        dataset = ready.filter(pk=int(m.group(1))).first() if m else None
        if dataset is None:
            warnings.append(f"data.corpora.{i}: {path!r} is not one of your ready datasets.")
            continue
        chosen.append(dataset.pk)
        initial[weight_field_name(dataset.pk)] = corpus.get("weight", 1.0)
    if chosen:
        initial["datasets"] = chosen
    return initial, warnings


class ImportYamlForm(forms.Form):
    """A run config as YAML (a file or pasted text) that fills the new-run form."""

    config_file = forms.FileField(required=False, label="YAML file")
    config_yaml = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 6}), label="or paste YAML"
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        upload = cleaned.get("config_file")
        if upload is not None:
            if upload.size > MAX_YAML_BYTES:
                raise forms.ValidationError(f"config_file: larger than {MAX_YAML_BYTES} bytes")
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise forms.ValidationError("config_file: not UTF-8 text") from None
        else:
            text = cleaned.get("config_yaml") or ""
        if not text.strip():
            raise forms.ValidationError("give a YAML file or paste a config")
        if len(text.encode()) > MAX_YAML_BYTES:
            raise forms.ValidationError(f"config: larger than {MAX_YAML_BYTES} bytes")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise forms.ValidationError(f"not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise forms.ValidationError("the YAML must be a mapping of config sections")
        cleaned["config"] = data
        return cleaned
