"""The run configuration: one typed, documented schema for everything a run needs.

It is the single source of truth for the trainer CLI, the web form (built from
these fields, their defaults, descriptions and checks) and the YAML a user can
import or export. Schema validation here is pure: it never touches the file
system, so the web app can validate a config whose corpora are still
placeholders (``dataset://<id>``) that the worker resolves to prepared
directories before launch. :func:`check_paths` does the file-system checks.

Each section is a keyword-only pydantic model; ``json_schema_extra["group"]``
names the form group a section belongs to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "CheckpointConfig",
    "ConfigError",
    "CorpusSpec",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "ParallelConfig",
    "ScheduleConfig",
    "TrainConfig",
    "check_paths",
    "dump_config",
    "load_config",
]

DATASET_PLACEHOLDER = "dataset://"


class ConfigError(ValueError):
    """A config that does not validate; ``errors`` maps dotted field names to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    """The base model and how it is run."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"group": "model"})

    path: str = Field(
        ...,
        min_length=1,
        description="Base model: a local directory with config.json and a tokenizer, "
        "or a Hugging Face hub id already in the local cache (nothing is downloaded).",
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto",
        description="Parameter/compute precision. auto = bf16 mixed precision on CUDA, fp32 on CPU.",
    )
    activation_checkpointing: bool = Field(
        False, description="Recompute each decoder layer's activations in backward to save memory."
    )
    compile: bool = Field(
        False, description="torch.compile each decoder layer (CUDA; slower start, faster steps)."
    )


class CorpusSpec(_Section):
    """One prepared corpus and its share of the training mix."""

    path: str = Field(
        ...,
        min_length=1,
        description="Prepared corpus directory (holding manifest.json from trainer.prepare), "
        "or dataset://<id> in the web app, resolved by the worker.",
    )
    weight: float = Field(
        1.0, gt=0, le=1000, description="Relative sampling weight in the mix (normalized to 1)."
    )
    name: str = Field("", max_length=200, description="Label shown in logs and the UI.")


class DataConfig(_Section):
    """What the model reads and in what shapes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"group": "data"})

    corpora: list[CorpusSpec] = Field(
        ...,
        min_length=1,
        max_length=32,
        description="Prepared corpora mixed by weight (domain data plus general replay data).",
    )
    seq_len: int = Field(
        1024, ge=8, le=131072, description="Tokens per training sequence (context length)."
    )
    micro_batch_size: int = Field(
        4, ge=1, le=4096, description="Sequences per rank per forward/backward pass."
    )
    grad_accum_steps: int = Field(
        1, ge=1, le=4096, description="Micro-batches accumulated before each optimizer step."
    )


class OptimConfig(_Section):
    """AdamW and gradient handling."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"group": "optimization"})

    lr: float = Field(3e-5, gt=0, le=1.0, description="Peak learning rate.")
    weight_decay: float = Field(
        0.1, ge=0, le=10, description="AdamW weight decay (not applied to norms and biases)."
    )
    beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1.")
    beta2: float = Field(0.95, ge=0, lt=1, description="AdamW beta2.")
    eps: float = Field(1e-8, gt=0, le=1e-2, description="AdamW epsilon.")
    grad_clip: float = Field(
        1.0, ge=0, description="Clip gradients to this global L2 norm (0 disables)."
    )


class ScheduleConfig(_Section):
    """How long to train and how the learning rate moves."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"group": "schedule"})

    total_steps: int | None = Field(
        1000, ge=1, le=100_000_000, description="Optimizer steps to run (or set total_tokens)."
    )
    total_tokens: int | None = Field(
        None,
        ge=1,
        description="Tokens to train on; converted to steps from the global batch. "
        "Overrides total_steps when set.",
    )
    kind: Literal["cosine", "linear", "constant", "wsd"] = Field(
        "cosine",
        description="LR schedule after warmup: cosine or linear decay to min_lr_ratio, "
        "constant, or warmup-stable-decay (wsd).",
    )
    warmup_steps: int = Field(100, ge=0, description="Linear warmup steps from 0 to lr.")
    min_lr_ratio: float = Field(
        0.1, ge=0, le=1, description="Final LR as a fraction of the peak LR."
    )
    decay_fraction: float = Field(
        0.2, gt=0, le=1, description="wsd only: fraction of the steps spent decaying at the end."
    )

    @model_validator(mode="after")
    def _steps_or_tokens(self) -> ScheduleConfig:
        if self.total_steps is None and self.total_tokens is None:
            raise ValueError("set total_steps or total_tokens")
        return self


class EvalConfig(_Section):
    """Validation-loss evaluation during training."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"group": "evaluation"})

    interval: int = Field(
        200, ge=0, description="Evaluate every this many steps (0 disables; always at the end)."
    )
    batches: int = Field(
        20, ge=1, le=100_000, description="Validation micro-batches per rank per evaluation."
    )


class CheckpointConfig(_Section):
    """Sharded checkpoints and retention."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"group": "checkpoints"})

    interval: int = Field(
        200, ge=0, description="Save every this many steps (0: only at the end and on stop)."
    )
    keep: int = Field(
        3, ge=2, le=1000, description="Keep the last K checkpoints (at least 2), plus the best."
    )
    keep_best: bool = Field(True, description="Also keep the checkpoint with the lowest val_loss.")
    auto_resume: bool = Field(
        False,
        description="If the run is lost (worker or host gone) or preempted from outside "
        "(SIGTERM not asked for in the UI), re-queue it from the latest checkpoint, up to "
        "max_restarts times.",
    )
    max_restarts: int = Field(3, ge=0, le=100, description="Upper bound for auto-resume.")


class ParallelConfig(_Section):
    """Processes and devices."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"group": "parallelism"})

    nproc_per_node: int = Field(
        1, ge=1, le=64, description="Processes (GPUs) per node; torchrun --nproc-per-node."
    )
    nnodes: int = Field(1, ge=1, le=1024, description="Nodes; torchrun --nnodes.")
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="auto = CUDA with NCCL when available, else CPU with gloo."
    )


class TrainConfig(_Section):
    """Everything a continued-pretraining run needs."""

    name: str = Field("run", min_length=1, max_length=200, description="Run name.")
    seed: int = Field(1234, ge=0, le=2**31 - 1, description="Seed for init, data order and RNG.")
    log_interval: int = Field(10, ge=1, description="Write a metric event every this many steps.")
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)  # type: ignore[arg-type]
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)  # type: ignore[arg-type]
    eval: EvalConfig = Field(default_factory=EvalConfig)  # type: ignore[arg-type]
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)  # type: ignore[arg-type]
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _cross_field(self) -> TrainConfig:
        steps = self.schedule.total_steps
        if (
            steps is not None
            and self.schedule.total_tokens is None
            and self.schedule.warmup_steps > steps
        ):
            raise ValueError("schedule.warmup_steps must not exceed schedule.total_steps")
        return self

    # -- derived values -------------------------------------------------------
    def world_size(self) -> int:
        """Data-parallel ranks: nproc_per_node * nnodes."""
        return self.parallel.nproc_per_node * self.parallel.nnodes

    def tokens_per_step(self, world_size: int | None = None) -> int:
        """Tokens in one optimizer step across all ranks."""
        ws = world_size if world_size is not None else self.world_size()
        d = self.data
        return d.seq_len * d.micro_batch_size * d.grad_accum_steps * ws

    def resolved_total_steps(self, world_size: int | None = None) -> int:
        """total_steps, or total_tokens converted to steps (rounded up)."""
        if self.schedule.total_tokens is not None:
            per = self.tokens_per_step(world_size)
            return max(1, -(-self.schedule.total_tokens // per))
        assert self.schedule.total_steps is not None
        return self.schedule.total_steps


def _format_errors(exc: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "__root__"
        msg = err["msg"]
        # Model-level validators report the offending field in the message itself.
        if loc == "__root__" or not err["loc"]:
            for part in msg.replace("Value error, ", "").split():
                if "." in part and part.split(".")[0] in TrainConfig.model_fields:
                    loc = part
                    break
        out.setdefault(loc, msg.replace("Value error, ", ""))
    return out


def parse_config(data: dict[str, Any]) -> TrainConfig:
    """Validate a plain dict; raise :class:`ConfigError` naming each bad field."""
    if not isinstance(data, dict):
        raise ConfigError({"__root__": "config must be a mapping"})
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def load_config(source: str | Path) -> TrainConfig:
    """Load and validate a YAML or JSON config file (JSON is valid YAML)."""
    text = Path(source).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) if not str(source).endswith(".json") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError({"__root__": f"cannot parse {source}: {exc}"}) from None
    return parse_config(data)


def dump_config(config: TrainConfig) -> str:
    """The config as YAML, with every field (defaults included), in schema order."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def check_paths(config: TrainConfig) -> None:
    """File-system checks done just before launch: corpora are prepared directories."""
    errors: dict[str, str] = {}
    for i, corpus in enumerate(config.data.corpora):
        if corpus.path.startswith(DATASET_PLACEHOLDER):
            errors[f"data.corpora.{i}.path"] = "unresolved dataset placeholder"
        elif not (Path(corpus.path) / "manifest.json").is_file():
            errors[f"data.corpora.{i}.path"] = f"no manifest.json in {corpus.path}"
    if errors:
        raise ConfigError(errors)
