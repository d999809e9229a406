"""What every script shares: quiet TensorFlow start-up, and user errors without tracebacks."""
from __future__ import annotations

import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) hides the output users want.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run(main) -> None:
    from .io import UserError

    try:
        sys.exit(main())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # e.g. `predict.py ... | head`
        sys.exit(0)


def log(msg: str) -> None:
    print(msg, flush=True)
