"""Install packages into this Python's environment with uv, configured as pip is.

uv installs the same pins several times faster than pip, mostly because it unpacks torch's
CUDA libraries (4 GB) in parallel (docs/performance.md). It reads no pip configuration, so
the indexes, local wheel folders, constraints and certificate pip is set up with here are
handed to it: both resolve the same versions from the same places, and a machine with no pip
configuration gets PyPI. A uv variable already set in the environment is left as it is.

    python scripts/uv_install.py -e ".[dev]"
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

# pip's setting -> uv's variable and how that variable separates several values (pip's own
# settings separate them by whitespace). uv's default "first index" strategy would take a
# package from the first index that has it at all; pip takes the best match across them all.
PIP_TO_UV = {
    "index-url": ("UV_DEFAULT_INDEX", " "),
    "extra-index-url": ("UV_EXTRA_INDEX_URL", " "),
    "find-links": ("UV_FIND_LINKS", ","),
    "constraint": ("UV_CONSTRAINT", " "),
    "cert": ("SSL_CERT_FILE", " "),
}
# Later sections win, as in pip: its files' [global], then [install], then PIP_* variables.
SECTION_ORDER = ("global", "install", ":env:")


def uv_environment(pip_config_list: str) -> dict[str, str]:
    """uv's variables for the settings printed by `pip config list` (`section.key='value'`)."""
    found: dict[str, dict[str, str]] = {}
    for line in pip_config_list.splitlines():
        name, sep, quoted = line.partition("=")
        section, _, key = name.rpartition(".")
        if sep and key in PIP_TO_UV and section in SECTION_ORDER:
            found.setdefault(key, {})[section] = ast.literal_eval(quoted)
    env = {"UV_INDEX_STRATEGY": "unsafe-best-match"}
    for key, by_section in found.items():
        value = next(by_section[s] for s in reversed(SECTION_ORDER) if s in by_section)
        variable, separator = PIP_TO_UV[key]
        env[variable] = separator.join(value.split())
    return env


def main(args: list[str]) -> int:
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    env = {**uv_environment(listed.stdout), **os.environ}  # a uv variable set by hand wins
    # --compile-bytecode, as pip does: where PYTHONDONTWRITEBYTECODE is set, nothing else
    # would, and every process would compile torch and MLflow again (a test suite 40% slower).
    command = [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--no-cache"]
    command += ["--compile-bytecode", "--python", sys.executable, *args]
    return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
