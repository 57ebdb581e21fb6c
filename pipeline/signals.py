"""Holding Ctrl-C and SIGTERM over a few lines that must not be cut in two.

A signal mask does not do it in Python: it holds a signal only in the calling thread, and the
kernel then hands a process-directed signal to any other thread (MLflow, SQLAlchemy and Ray
run threads of their own), whose delivery still raises KeyboardInterrupt in the main thread at
once. Python-level handlers run in the main thread whoever received the signal, so holding
means: record it in a handler of our own, then restore the usual handler and raise it again.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

HELD = (signal.SIGINT, signal.SIGTERM)


def hold_signals() -> Callable[[], None]:
    """Hold SIGINT and SIGTERM from now on; return `release`, which restores their handlers
    and then raises a held signal through its usual handler (Ctrl-C: KeyboardInterrupt).
    Outside the main thread, where no handler can be set, nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in HELD}

    def release() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(caught):
            signal.raise_signal(s)

    return release
