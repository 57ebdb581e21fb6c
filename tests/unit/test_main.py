"""`python -m pipeline` ends its process without the interpreter's teardown
(pipeline/__main__.py); what Python's own exit does that a command relies on still happens,
in Python's order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.repo import REPO, command_env

# The command line run as `python -m pipeline`, after registering an exit handler and starting
# a thread that is still working when the command ends. Their lines stay in stdout's buffer
# (a pipe's is not flushed by a newline) until the process flushes it.
WITH_A_THREAD_AND_A_HANDLER = """
import atexit, runpy, sys, threading, time
print("before the command")
atexit.register(lambda: print("exit handler ran"))
def late_writer():
    time.sleep(0.5)
    print("thread finished")
threading.Thread(target=late_writer).start()
sys.argv = ["pipeline", *sys.argv[1:]]
runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
"""


def test_threads_finish_exit_handlers_run_output_is_flushed_and_the_code_kept(
    tmp_path: Path,
) -> None:
    # No params.yaml in tmp_path: a mistake the user can fix, exit 2. Buffered output, as a
    # user's shell leaves it, whatever this machine sets.
    done = subprocess.run(
        [sys.executable, "-c", WITH_A_THREAD_AND_A_HANDLER, "train", "--variant", "l2"],
        cwd=tmp_path,
        env=command_env(PYTHONPATH=str(REPO), PYTHONUNBUFFERED=""),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stdout.splitlines() == ["before the command", "thread finished", "exit handler ran"]
