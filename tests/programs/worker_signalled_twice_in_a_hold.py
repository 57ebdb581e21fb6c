"""A forked worker's handler stops it once and then ignores both signals, and stays so after
a hold ends: its clean-up (ending its run KILLED) is not cut short by the SIGTERM its parent
forwards.

    python tests/programs/worker_signalled_twice_in_a_hold.py

Prints `stopped` when the hold let the KeyboardInterrupt through (`held` otherwise), then
whether SIGINT and SIGTERM are each ignored afterwards (`True True`).
"""

from __future__ import annotations

import signal

from pipeline import signals
from pipeline.signals import _interrupt_once


def main() -> None:
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, _interrupt_once)
    try:
        with signals.signals_held():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            print("held")
    except KeyboardInterrupt:
        print("stopped")
    print(*(signal.getsignal(s) is signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM)))


if __name__ == "__main__":
    main()
