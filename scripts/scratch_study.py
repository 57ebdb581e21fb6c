"""A study on changed params.yaml settings, run in a scratch folder so that this project's
outputs stay as they are: `python -m pipeline study` there, its runs going to this project's
MLflow store (under the experiment the settings name), and its report copied out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def study_in_scratch(params: dict, out: Path, copy: dict[str, str]) -> None:
    """Run the study on `params` in a scratch folder; copy its files `copy` (path there ->
    name in `out`) into `out`."""
    with tempfile.TemporaryDirectory(prefix="study-") as scratch:
        folder = Path(scratch)
        (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        if (ROOT / "networks").is_dir():  # the user's networks, as the project has them
            shutil.copytree(ROOT / "networks", folder / "networks")
        # A study in a copy of the project, as a DVC experiment in `.dvc/tmp/exps/` is: DVC_ROOT
        # sends its runs to this project's store and `mlruns/` (paths.tracking_root).
        env = {**os.environ, "DVC_ROOT": str(ROOT)}
        python = os.path.abspath(sys.executable)  # the scratch folder is the working directory
        subprocess.run([python, "-m", "pipeline", "study"], cwd=folder, env=env, check=True)
        out.mkdir(parents=True, exist_ok=True)
        for source, name in copy.items():
            if (folder / source).is_dir():
                shutil.copytree(folder / source, out / name, dirs_exist_ok=True)
            else:
                shutil.copyfile(folder / source, out / name)
