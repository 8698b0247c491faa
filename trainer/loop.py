"""The training loop: one step = grad-accumulated micro-batches, clip, AdamW, LR step.

Every rank runs the same code; rank 0 writes events and meta files. The loss
logged and optimised is the token-weighted mean over the whole global batch
(sum of token losses over micro-batches and ranks divided by the number of
target tokens), not a mean of per-micro-batch means.

Stopping: SIGTERM/SIGINT only set a flag. At the end of the step all ranks
agree (the flag rides on the loss all-reduce), save a checkpoint, write status
``preempted`` and exit with :data:`EXIT_PREEMPTED`. ``stop_after_steps`` does
exactly the same at a chosen step (a deterministic preemption for tests/ops).

Fencing (``attempt`` set, ``--attempt N``): a newer attempt of the run may have been
started elsewhere while this one was cut off from the worker (trainer/fence.py). Rank 0
reads ``attempt.json`` once per step and the answer rides on the same end-of-step
all-reduce; it is read again (one small collective) before every checkpoint save. Once
it names a newer attempt, every rank returns :data:`EXIT_SUPERSEDED` at once: no
checkpoint, no more events, the reason on stderr.
"""

from __future__ import annotations

import math
import random
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from trainer import checkpoint as ckpt
from trainer.config import TrainConfig, dump_config
from trainer.distributed import DistInfo, all_reduce_sum, barrier, init_distributed, teardown
from trainer.events import EventWriter
from trainer.fence import ATTEMPT_FILE, EXIT_SUPERSEDED, superseded
from trainer.flops import flops_per_token, mfu, peak_flops
from trainer.model_setup import broadcast_weights, check_tokenizer, load_model, parallelize
from trainer.optim import build_optimizer, build_scheduler, clip_grad_norm
from trainer.sampler import MixtureSampler, ValidationWindows

__all__ = ["EXIT_COMPLETED", "EXIT_FAILED", "EXIT_PREEMPTED", "EXIT_SUPERSEDED", "run_training"]

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped cleanly with a checkpoint; resume to continue.


class _StopFlag:
    """Set by SIGTERM/SIGINT; read once per step."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signal = signum


def _stop_reason(signum: int | None, stop_after_steps: int | None) -> str:
    """``SIGTERM`` or ``--stop-after-steps K``: why a run is preempted, for its log."""
    if signum is None:
        return f"--stop-after-steps {stop_after_steps}"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    # Peak resident set of this process (Linux reports KiB).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


class Trainer:
    """Holds the sharded model, optimizer, data and state of one run."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        info: DistInfo,
        events: EventWriter,
        attempt: int | None = None,
    ) -> None:
        from trainer.shards import PreparedCorpus

        self.cfg, self.run_dir, self.info, self.events = cfg, run_dir, info, events
        self.attempt = attempt  # None: no fencing (the standalone CLI without --attempt)
        _seed_everything(cfg.seed)
        if info.device.type == "cpu":
            # Cheap on CPU and what makes resumed losses bit-for-bit equal.
            torch.use_deterministic_algorithms(True, warn_only=True)
        corpora = [PreparedCorpus(c.path) for c in cfg.data.corpora]
        # One full copy per job in host memory: rank 0 loads, the others wait for shards.
        lm = load_model(cfg.model.path, on_meta=not info.is_main)
        full_state = dict(lm.state_dict()) if info.is_main and info.world_size > 1 else None
        check_tokenizer(cfg.model.path, corpora, lm.get_input_embeddings().weight.shape[0])
        self.flops_per_token = flops_per_token(lm, cfg.data.seq_len)
        self.peak = peak_flops(info.device)
        self.model = parallelize(lm, cfg.model, info.device, info.world_size)
        if info.world_size > 1:
            broadcast_weights(lm, full_state, info.device)
            del full_state
        self.lm = lm
        self.params = [p for p in lm.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(lm, cfg.optim, info.device)
        self.total_steps = cfg.resolved_total_steps(info.world_size)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, self.total_steps)
        d = cfg.data
        self.sampler = MixtureSampler(
            [c.split("train") for c in corpora],
            [c.weight for c in cfg.data.corpora],
            seq_len=d.seq_len,
            micro_batch_size=d.micro_batch_size,
            grad_accum_steps=d.grad_accum_steps,
            rank=info.rank,
            world_size=info.world_size,
            seed=cfg.seed,
            names=[c.name or c.path for c in cfg.data.corpora],
        )
        self.val = ValidationWindows([c.split("val") for c in corpora], seq_len=d.seq_len)
        self.state = ckpt.TrainState(
            scheduler=self.scheduler, sampler=self.sampler, device=info.device, seed=cfg.seed
        )
        self.last_loss: float | None = None
        self.last_val_loss: float | None = None

    # -- one step ---------------------------------------------------------------
    def train_step(self, stop_requested: bool) -> tuple[float, float, bool, int]:
        """One optimizer step; returns (global mean loss, grad norm, any rank asked to stop,
        the newer attempt ``attempt.json`` names or 0)."""
        dev = self.info.device
        batches = self.sampler.next_step()
        # Target tokens of the whole global batch, known before backward so every
        # micro-batch's loss can be scaled to its share of the token-weighted mean.
        local_tokens = sum(int(b[:, 1:].numel()) for b in batches)
        (global_tokens,) = all_reduce_sum([float(local_tokens)], dev)
        # FSDP averages gradients over ranks; scaling by world_size turns that into a sum.
        scale = self.info.world_size / global_tokens
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        self.model.train()
        for batch in batches:
            batch = batch.to(dev, non_blocking=True)
            # Gradients are reduce-scattered after every micro-batch (FSDP2's default):
            # skipping that would keep unsharded fp32 gradients of the whole model alive.
            part, _ = self.model(batch[:, :-1], batch[:, 1:])
            (part * scale).backward()
            loss_sum += part.detach().double()
        grad_norm = clip_grad_norm(self.params, self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        # Read as late as possible before the metric is written; only rank 0 reads, so
        # the sum is its answer, and every rank gets it from the all-reduce it does anyway.
        newer = float(self._newer_attempt_here())
        total_loss, stops, newer = all_reduce_sum(
            [float(loss_sum), 1.0 if stop_requested else 0.0, newer], dev
        )
        self.state.step += 1
        self.state.tokens_seen += int(global_tokens)
        return total_loss / global_tokens, grad_norm, stops > 0, int(newer)

    # -- fencing ----------------------------------------------------------------
    def _newer_attempt_here(self) -> int:
        """Rank 0: the newer attempt ``attempt.json`` names, or 0 (other ranks: 0)."""
        if self.attempt is None or not self.info.is_main:
            return 0
        return superseded(self.run_dir, self.attempt) or 0

    def _newer_attempt_everywhere(self) -> int:
        """:meth:`_newer_attempt_here` agreed by all ranks (a collective when fencing)."""
        if self.attempt is None:  # the same on every rank: all skip the collective
            return 0
        (newer,) = all_reduce_sum([float(self._newer_attempt_here())], self.info.device)
        return int(newer)

    def _stand_down(self, newer: int, step: int) -> int:
        """Leave the run directory to attempt ``newer``: nothing more is written there."""
        if self.info.is_main:
            # train.log, not events.jsonl: the worker of the newer attempt follows that file.
            print(
                f"superseded: {ATTEMPT_FILE} names attempt {newer}, this is attempt "
                f"{self.attempt}: exiting at step {step} without a checkpoint or events",
                file=sys.stderr,
                flush=True,
            )
        return EXIT_SUPERSEDED

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Token-weighted validation loss over ``eval.batches`` micro-batches per rank."""
        if len(self.val) == 0:
            return None
        self.model.eval()
        dev = self.info.device
        loss_sum, tokens = 0.0, 0.0
        for b in range(self.cfg.eval.batches):
            index = b * self.info.world_size + self.info.rank
            batch = self.val.batch(index, self.cfg.data.micro_batch_size).to(dev)
            part, n = self.model(batch[:, :-1], batch[:, 1:])
            loss_sum += float(part)
            tokens += float(n)
        loss_sum, tokens = all_reduce_sum([loss_sum, tokens], dev)
        return loss_sum / tokens

    def save(self) -> None:
        """A checkpoint at the current step, a checkpoint event and retention."""
        if ckpt.is_committed(ckpt.checkpoint_dir(self.run_dir, self.state.step)):
            return  # already saved at this step (e.g. interval and stop coincide)
        meta = {"loss": self.last_loss, "val_loss": self.last_val_loss}
        path, size = ckpt.save_checkpoint(
            self.run_dir,
            model=self.lm,
            optimizer=self.optimizer,
            train_state=self.state,
            meta=meta,
        )
        if self.info.is_main:
            self.events.checkpoint(
                self.state.step,
                {
                    "path": str(path.relative_to(self.run_dir)),
                    "bytes": size,
                    "tokens_seen": self.state.tokens_seen,
                    **meta,
                },
            )
            ckpt.apply_retention(
                self.run_dir, self.cfg.checkpoint.keep, self.cfg.checkpoint.keep_best
            )
        dist.barrier()

    # -- the loop ---------------------------------------------------------------
    def fit(self, resume: str | None, stop_after_steps: int | None, stop: _StopFlag) -> int:
        """Train to the end (EXIT_COMPLETED), until a stop (EXIT_PREEMPTED) or until a
        newer attempt takes the run over (EXIT_SUPERSEDED)."""
        cfg = self.cfg
        if newer := self._newer_attempt_everywhere():
            return self._stand_down(newer, self.state.step)
        if self.info.is_main:
            (self.run_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
        start = ckpt.resolve_resume(self.run_dir, resume)
        if start is not None:
            ckpt.load_checkpoint(
                start, model=self.lm, optimizer=self.optimizer, train_state=self.state
            )
            meta = ckpt.read_meta(start)
            self.last_loss, self.last_val_loss = meta.get("loss"), meta.get("val_loss")
        self.events.status(
            "running",
            f"resumed from {start} at step {self.state.step}" if start else "started",
            step=self.state.step,
        )
        # Throughput counts training steps only, not evaluations or checkpoint saves.
        window_time, window_tokens, window_steps = 0.0, 0, 0
        while self.state.step < self.total_steps:
            # The lr this step uses (the scheduler moves on inside train_step).
            lr = self.optimizer.param_groups[0]["lr"]
            t0 = time.perf_counter()
            loss, grad_norm, stopping, newer = self.train_step(stop.signal is not None)
            window_time += time.perf_counter() - t0  # train_step ends in a sync (all-reduce)
            step = self.state.step
            if newer:
                # Not a fence without a window: attempt.json may change right after rank
                # 0 read it, so this step's metric (and eval) may still land after the
                # change; the next step's read stops it. Bounded by one step.
                return self._stand_down(newer, step)
            self.last_loss = loss
            window_tokens += self.cfg.tokens_per_step(self.info.world_size)
            window_steps += 1
            if step % cfg.log_interval == 0 or step == self.total_steps:
                rate = window_tokens / window_time
                data: dict[str, Any] = {
                    "loss": loss,
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "tokens_per_s": rate,
                    "mem_gb": _memory_gb(self.info.device),
                    "tokens_seen": self.state.tokens_seen,
                    "step_time": window_time / window_steps,
                }
                u = mfu(rate, self.flops_per_token, self.peak, self.info.world_size)
                if u is not None:
                    data["mfu"] = u
                self.events.metric(step, data)
                window_time, window_tokens, window_steps = 0.0, 0, 0
            final = step == self.total_steps
            if final or (cfg.eval.interval and step % cfg.eval.interval == 0):
                val = self.evaluate()
                if val is not None:
                    self.last_val_loss = val
                    self.events.eval(step, val, math.exp(min(val, 50.0)))
            preempt = stopping or (stop_after_steps is not None and step >= stop_after_steps)
            if (
                final
                or preempt
                or (cfg.checkpoint.interval and step % cfg.checkpoint.interval == 0)
            ):
                # Checked again right before saving (an eval may have taken a while): a
                # superseded save could replace the newer attempt's folder at the same
                # step or delete its checkpoints in retention. The window between this
                # check and the end of the save (the save's duration) remains.
                if newer := self._newer_attempt_everywhere():
                    return self._stand_down(newer, step)
                self.save()
            if preempt and not final:
                why = (
                    f"signal {stop.signal}"
                    if stopping
                    else f"--stop-after-steps {stop_after_steps}"
                )
                self.events.status("preempted", f"stopped at step {step} ({why})", step=step)
                if self.info.is_main:
                    # The one line a stop leaves in train.log (see trainer.torchrun).
                    print(
                        f"stop requested ({_stop_reason(stop.signal, stop_after_steps)}): "
                        f"checkpoint saved at step {step}, exiting",
                        file=sys.stderr,
                        flush=True,
                    )
                return EXIT_PREEMPTED
        self.events.status("completed", f"finished at step {self.state.step}", step=self.state.step)
        return EXIT_COMPLETED


def run_training(
    cfg: TrainConfig,
    run_dir: Path,
    resume: str | None = None,
    stop_after_steps: int | None = None,
    attempt: int | None = None,
) -> int:
    """Run (or resume) a training job in this process; returns the exit code.

    ``attempt``: fence on ``attempt.json`` (see the module docstring); None: no fencing.
    """
    stop = _StopFlag()
    stop.install()
    info = init_distributed(cfg.parallel.device)
    events = EventWriter(run_dir, enabled=info.is_main)
    try:
        trainer = Trainer(cfg, run_dir, info, events, attempt=attempt)
        code = trainer.fit(resume, stop_after_steps, stop)
        # Every rank got here with the same code: meet before leaving the process group.
        # Without it a rank that returns early (a superseded attempt, which saves nothing)
        # could tear gloo down under a peer still finishing its last collective, and that
        # peer died with SIGABRT ("terminate called without an active exception").
        barrier()
        return code
    except BaseException as exc:
        events.status("failed", f"{type(exc).__name__}: {exc}")
        print(f"[rank {info.rank}] training failed: {exc!r}", file=sys.stderr, flush=True)
        raise
    finally:
        events.close()
        teardown()
