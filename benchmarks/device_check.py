"""Train every variant of params.yaml for one seed on a device, without tracking, and print
a table: epoch time, best val loss, final gap, test accuracy. Checks the GPU path in one call:

    python benchmarks/device_check.py --device cuda

Needs `data/prepared/` (run `python -m pipeline prepare` first).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from pipeline.core.loading import load_params  # noqa: E402
from pipeline.core.spec import run_specs  # noqa: E402
from pipeline.data.prepared import load_pool  # noqa: E402
from pipeline.training.device import SeedSplits, resolve_device  # noqa: E402
from tests.support.training import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    params = load_params(Path(args.params))
    device = resolve_device(args.device)
    data = SeedSplits(load_pool(Path("data/prepared")), device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}")
    print(f"{'variant':<16}{'s/epoch':>9}{'best val':>10}{'gap last':>10}{'test acc':>10}")
    for variant in params.variants:
        spec = run_specs(params, variant, [args.seed])[0]
        started = time.perf_counter()
        result = train(spec, data)
        seconds = (time.perf_counter() - started) / len(result.history)
        s = result.summary
        print(
            f"{variant:<16}{seconds:>9.3f}{s['best_val_loss']:>10.4f}"
            f"{s['loss_gap_last']:>10.4f}{s['test_accuracy']:>10.4f}"
        )
    # Same seed twice on this device: are the histories identical?
    spec = run_specs(params, next(iter(params.variants)), [args.seed])[0]
    first, second = train(spec, data), train(spec, data)
    same = [
        {k: v for k, v in a.items() if k != "epoch_seconds"}
        == {k: v for k, v in b.items() if k != "epoch_seconds"}
        for a, b in zip(first.history, second.history, strict=True)
    ]
    print(f"repeat with the same seed: histories identical in {sum(same)}/{len(same)} epochs")


if __name__ == "__main__":
    main()
