"""Register base models: the plain functions behind the views and the demo command."""

from __future__ import annotations

from webapp.basemodels.models import BaseModel
from webapp.basemodels.probe import ModelInfo, probe_model


def register_model(owner, name: str, source: str) -> BaseModel:
    """Check ``source`` loads and save it for ``owner`` (raises ModelCheckError otherwise)."""
    info: ModelInfo = probe_model(source)
    return BaseModel.objects.create(
        owner=owner,
        name=name.strip() or source.strip().rstrip("/").split("/")[-1],
        source=source.strip(),
        path=info.path,
        architecture=info.architecture,
        num_params=info.num_params,
        vocab_size=info.vocab_size,
        max_context=info.max_context,
        details=info.details,
    )
