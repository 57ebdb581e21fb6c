"""Every handler of Ctrl-C (SIGINT) and SIGTERM: the command line's, and the hold over code
that must not be cut in two.

The command line turns SIGTERM into an interrupt like Ctrl-C (`cli_handles_sigterm`), so both
end open runs KILLED and exit 143 / 130.

A KeyboardInterrupt can surface at any bytecode. Inside an MLflow call (creating a run, a
store transaction, ending a run while its queued metrics drain) it leaves the run RUNNING
with nobody to end it, or the store mid-write. So while a run is open the signals are held:
a handler of our own records them, training stops at its next safe point (the trainer asks
`stop_requested` before every mini-batch), and the run is ended KILLED before the signal
goes on to its usual handler.

A signal mask does not do this in Python: it holds a signal only in the calling thread, and
the kernel then hands a process-directed signal to any other thread (MLflow, SQLAlchemy and
Ray run threads of their own), whose delivery still raises in the main thread. Python-level
handlers run in the main thread whoever received the signal, hence a recording handler.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HELD = (signal.SIGINT, signal.SIGTERM)

# What each hold now in force has caught, innermost last.
_holds: list[list[int]] = []


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM over the block; on leaving it, restore their handlers and then
    deliver a held signal to its usual handler (Ctrl-C: KeyboardInterrupt). Ctrl-C a second
    time acts at once, as without a hold: pressed twice, it stops even a call that hangs (a
    tracking server that does not answer). A repeated SIGTERM is held like the first: a
    scheduler may send it more than once, and one that will not wait sends SIGKILL.

    Holds nest. A signal set to be ignored (a job started in the background of a shell
    ignores SIGINT), or handled outside Python, is left alone. Outside the main thread,
    where no handler can be set, nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous: dict[int, Any] = {}

    def record(signum: int, frame: Any) -> None:
        if signum not in caught:
            caught.append(signum)
            return
        if signum != signal.SIGINT:  # a repeated SIGTERM: held like the first
            return
        caught.remove(signum)  # Ctrl-C twice: delivered now, not again on release
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        else:  # SIG_DFL: the default action (the process ends)
            signal.signal(signum, handler)
            signal.raise_signal(signum)

    for s in HELD:
        handler = signal.getsignal(s)
        if handler is not signal.SIG_IGN and handler is not None:
            previous[s] = signal.signal(s, record)
    _holds.append(caught)
    try:
        yield
    finally:
        del _holds[next(i for i, held in enumerate(_holds) if held is caught)]
        for s, handler in previous.items():
            # Unless a handler changed it meanwhile.
            if signal.getsignal(s) is record:
                signal.signal(s, handler)
        for s in dict.fromkeys(caught):
            signal.raise_signal(s)


def stop_requested() -> bool:
    """Whether a held signal is waiting: work should stop at its next safe point. The signal
    itself still reaches its usual handler when its hold ends."""
    return any(_holds)


def stop_if_signalled() -> None:
    """A point where work may stop: raise KeyboardInterrupt if a held signal is waiting."""
    if stop_requested():
        raise KeyboardInterrupt


# --- the command line ------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: runs end KILLED and no output is left half-written."""


_terminated = False  # set by SIGTERM: Ray's waits re-raise any interrupt as KeyboardInterrupt


def _raise_terminated(signum: int, frame: object) -> None:
    global _terminated
    _terminated = True
    raise Terminated()


def cli_handles_sigterm() -> None:
    """SIGTERM raises `Terminated`, a KeyboardInterrupt, in the main thread."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def interrupt_name(error: KeyboardInterrupt) -> tuple[str, int]:
    """Which signal stopped the command, and the exit code that says so (128 + its number)."""
    if isinstance(error, Terminated) or _terminated:
        return "SIGTERM", 143
    return "SIGINT", 130


@contextmanager
def sigterm_handler_kept() -> Iterator[None]:
    """The block may replace the SIGTERM handler (ray.init installs one that exits at once);
    the command's own, which ends open runs KILLED first, is put back afterwards."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, handler)
