"""`python -m pipeline`: the command line, then a quick exit.

After a command's last line, a process that has loaded torch and MLflow would spend ~0.7 s
in the interpreter's teardown, freeing every module's objects one by one
(docs/performance.md). Nothing of the command is left to do by then: its files are written
and closed, its MLflow runs ended. So the process does what Python's exit does that matters,
in the same order (waits for the threads still working, runs the exit handlers, flushes
stdout and stderr), and ends there, with the exit code the command chose.
"""

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn

from .cli.main import main


def exit_now(code: object) -> NoReturn:
    # Python's own exit calls these two, in this order: the first stops the thread pools
    # (MLflow's background logging among them) and joins every non-daemon thread.
    threading._shutdown()
    atexit._run_exitfuncs()
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): the message, and exit 1
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing can reach it
            stream.flush()
    os._exit(code)


try:
    main()
except SystemExit as e:
    exit_now(e.code)
