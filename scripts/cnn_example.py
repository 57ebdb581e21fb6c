"""The worked example of docs/cnn.md: the default variants plus augmentation (random crops),
trained with the built-in CNN on the offline MNIST subset, in a scratch folder (this project's
outputs stay as they are); its report goes to docs/cnn-example/.

    python scripts/cnn_example.py [--epochs 20]     (make cnn-example)
"""

from __future__ import annotations

import argparse

import yaml
from scratch_study import ROOT, study_in_scratch

OUT = ROOT / "docs" / "cnn-example"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="train.epochs (default: 20)")
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"] = {
        "network": "cnn",
        "channels": [16, 32],
        "hidden_sizes": [128],
        "activation": "relu",
    }
    params["train"]["epochs"] = args.epochs
    # random crops of the training images, padded by 2 pixels; no flips: a mirrored digit is
    # another symbol
    params["variants"]["augmentation"] = {"crop": 2}
    params["rounds"] = None  # the train stages' seeds only
    params["mlflow"]["experiment"] += "-cnn"
    files = ("gap_report.md", "summary.json", "figures")
    study_in_scratch(params, OUT, {f"reports/{name}": name for name in files})
    print(f"report: {OUT.relative_to(ROOT)}/gap_report.md")


if __name__ == "__main__":
    main()
