"""Entry point: ``torchrun --nproc-per-node N -m trainer.train --config run.yaml --run-dir DIR``.

Continued pretraining of a Hugging Face causal LM with FSDP2 (docs/CONTRACTS.md).
The config is loaded and validated, and the corpora checked, before any process
group starts; a bad config exits with code 2 and the offending field names.

Exit codes: 0 completed, 75 preempted (SIGTERM/SIGINT or --stop-after-steps:
a checkpoint was saved, resume with ``--resume latest``), 76 superseded (started
with ``--attempt N`` and ``<run dir>/attempt.json`` named a newer attempt: stopped
at once, with no checkpoint and no more events; the reason is on stderr), 1
failed, 2 bad config. Under torchrun, torchrun's own exit code is 1 for any
non-zero worker code; ``events.jsonl``'s last status event says which case it
was (none for 76: the last one stays ``running``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.config import ConfigError, check_paths, load_config

EXIT_BAD_CONFIG = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="trainer.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="TrainConfig as YAML or JSON.")
    parser.add_argument("--run-dir", required=True, help="Run directory (events, checkpoints).")
    parser.add_argument(
        "--resume",
        default=None,
        help="'latest' (the newest committed checkpoint, if any) or a checkpoint folder.",
    )
    parser.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        metavar="K",
        help="Testing/ops aid: behave exactly like a preemption once step K is done "
        "(checkpoint, status preempted, exit 75).",
    )
    parser.add_argument(
        "--attempt",
        type=int,
        default=None,
        metavar="N",
        help="This launch is attempt N of the run: stop (exit 76, nothing saved) once "
        "<run dir>/attempt.json names a newer attempt. Without it, no fencing.",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Validate, then train; returns the process exit code."""
    args = parse_args(argv)
    try:
        cfg = load_config(args.config)
        check_paths(cfg)
    except (ConfigError, OSError) as exc:
        errors = getattr(exc, "errors", {"config": str(exc)})
        for field, message in errors.items():
            print(f"config error: {field}: {message}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if args.stop_after_steps is not None and args.stop_after_steps < 1:
        print("config error: --stop-after-steps: must be >= 1", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if args.attempt is not None and args.attempt < 1:
        print("config error: --attempt: must be >= 1", file=sys.stderr)
        return EXIT_BAD_CONFIG
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    from trainer.loop import run_training  # torch and transformers: only once the config is valid

    return run_training(
        cfg,
        run_dir,
        resume=args.resume,
        stop_after_steps=args.stop_after_steps,
        attempt=args.attempt,
    )


if __name__ == "__main__":
    sys.exit(main())
