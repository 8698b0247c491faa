"""``torchrun`` that ends a stop by signal quietly: ``python -m trainer.torchrun <torchrun args>``.

Exactly ``python -m torch.distributed.run`` (same arguments, same exit codes), except
for one case. On SIGTERM/SIGINT torchrun forwards the signal to its ranks, waits for
them (ours save a checkpoint and exit 75) and then lets its ``SignalException``
escape ``main``, so every stop from the web page used to end ``train.log`` with a
traceback through torch's launcher internals. Here that exception is caught: torchrun
has already logged "Received N death signal, shutting down workers", and rank 0 has
printed what it did (``stop requested (...): checkpoint saved at step N, exiting``).
The exit status stays 1, what torchrun exits with for an escaped exception, so
``docs/CONTRACTS.md`` holds unchanged: the last status event tells stopped from failed.
"""

from __future__ import annotations

import sys

__all__ = ["EXIT_SIGNALLED", "main"]

EXIT_SIGNALLED = 1  # torchrun's own status when its SignalException escapes


def main(argv: list[str] | None = None) -> int:
    """Run torchrun with ``argv`` (default: the command line); returns the exit status."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main as torchrun_main

    try:
        torchrun_main(argv)
    except SignalException:
        # Expected on every stop and already logged by torchrun; a failing rank still
        # surfaces as ChildFailedError with its traceback, untouched.
        return EXIT_SIGNALLED
    return 0


if __name__ == "__main__":
    sys.exit(main())
