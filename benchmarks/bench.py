"""`make bench`: the trainer's speed against references measured in the same run.

Prints a table and writes reports/benchmark.json:
1. the machine's float32 matrix-multiply rate at the network's layer shapes and at a large
   square size, and from it the FLOP lower bound of one training epoch: for a linear layer
   with `i` inputs and `o` outputs, forward 2·i·o FLOPs per sample, backward 4·i·o (the
   gradients of the input and of the weights), i.e. 6 × weights × samples in all; biases,
   activations, the loss and the optimizer are left out (they are O(units), not O(weights));
2. the project's training epoch (`trainer.train_one_epoch`), no tracking, on a 60,000-sample
   MNIST-shaped set made here, at batch 128 and 512;
3. the usual tutorial loop on the same data and model: a Dataset that yields PIL images through
   ToTensor and Normalize, a DataLoader, a Python loop;
4. tracking overhead: a default-study run with per-epoch MLflow logging against the same run
   without it;
5. the fixed cost of one tracked run besides training (start, params, artifacts, model, end);
6. `dvc repro` with nothing to do;
7. a grid of small runs on all cores: one after another with every thread, or side by side
   with one thread each.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import DataConfig, MlflowConfig, Params  # noqa: E402
from pipeline.prepare import Prepared, prepare  # noqa: E402
from pipeline.regularization import make_optimizer, penalised_parameters  # noqa: E402
from pipeline.spec import run_specs  # noqa: E402
from pipeline.trainer import DeviceData, DeviceSplit, train, train_one_epoch  # noqa: E402

HIDDEN = [512, 512]
N_SAMPLES = 60_000


def best_of(fn, repeats: int = 3) -> float:
    """Fastest of `repeats` timings: the least disturbed by a shared, noisy machine."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def matmul_rate(m: int, k: int, n: int) -> float:
    """FLOP/s of (m, k) @ (k, n) in float32."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    reps = max(3, int(2e9 / (2 * m * k * n)))
    seconds = best_of(lambda: [a @ b for _ in range(reps)])
    return 2 * m * k * n * reps / seconds


def layer_shapes(n_in: int, hidden: list[int], n_out: int) -> list[tuple[int, int]]:
    sizes = [n_in, *hidden, n_out]
    return list(zip(sizes[:-1], sizes[1:], strict=True))


def flop_bound(shapes: list[tuple[int, int]], batch: int, samples: int) -> tuple[float, float]:
    """(FLOPs, seconds) of one epoch at the measured rate of each layer's shapes."""
    flops = seconds = 0.0
    for i, o in shapes:
        layer = 6 * i * o * samples
        # forward (B,i)@(i,o); backward (B,o)@(o,i) and (i,B)@(B,o): one rate per shape
        rate = np.mean([matmul_rate(batch, i, o), matmul_rate(batch, o, i),
                        matmul_rate(i, batch, o)])  # fmt: skip
        flops += layer
        seconds += layer / rate
    return flops, seconds


def synthetic_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)


def project_epoch(images: np.ndarray, labels: np.ndarray, batch: int) -> float:
    x = ((images.reshape(len(images), -1) / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    split = DeviceSplit(torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64)))
    params = Params.model_validate(
        {"model": {"hidden_sizes": HIDDEN}, "variants": {"baseline": {}}}
    )
    spec = run_specs(params, "baseline", [0])[0]
    torch.manual_seed(0)
    from pipeline.model import Architecture, build_mlp

    model = build_mlp(Architecture(784, tuple(HIDDEN), 10))
    optimizer = make_optimizer(model, "adam", 1e-3, 0.0, False)
    shuffle = torch.Generator().manual_seed(0)
    penalised = penalised_parameters(model, False)
    run = lambda: float(train_one_epoch(model, optimizer, split, batch, shuffle,  # noqa: E731
                                        spec.variant, penalised))  # fmt: skip
    run()  # warm-up
    return best_of(run, repeats=2)


def tutorial_epoch(images: np.ndarray, labels: np.ndarray, batch: int) -> float:
    """The loop most tutorials show: PIL images, transforms, DataLoader, per-batch Python."""
    from PIL import Image
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    class Digits(Dataset):
        def __init__(self):
            self.transform = transforms.Compose(
                [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
            )

        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int):
            return self.transform(Image.fromarray(images[i])), int(labels[i])

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512),
                          nn.ReLU(), nn.Linear(512, 10))  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    loader = DataLoader(Digits(), batch_size=batch, shuffle=True)

    def run() -> None:
        model.train()
        total = 0.0
        for inputs, targets in loader:
            optimizer.zero_grad()
            loss = criterion(model(inputs), targets)
            loss.backward()
            optimizer.step()
            total += loss.item()

    return best_of(run, repeats=1)


def study_data() -> Prepared:
    prepared, _ = prepare(DataConfig())
    return prepared


def tracking_costs(prepared: Prepared, repeats: int = 3) -> dict[str, float]:
    """Per-epoch logging overhead and the fixed cost of one run, against an untracked run.

    The machine is noisy (a run's time varies by ±10 %), so tracked and untracked runs
    alternate and the fastest of each counts; the time spent inside the logging calls
    themselves is measured too, which no noise inflates.
    """
    import mlflow

    from pipeline import tracking
    from pipeline.train import data_hyperparameters, log_model, tracked_training

    params = Params.model_validate({"variants": {"baseline": {}}})
    spec = run_specs(params, "baseline", [0])[0]
    data = DeviceData.of(prepared, torch.device("cpu"))
    train(spec, data)  # warm-up
    in_calls: list[float] = []

    def log(epoch: int, row: dict[str, float]) -> None:
        started = time.perf_counter()
        mlflow.log_metrics(row, step=epoch, synchronous=False)
        in_calls.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/bench.db"
        tracking.user_tracking_uri.cache_clear()
        tracking.ensure_experiment("bench")  # creating the store is a one-off, not per run
        plain, tracked = [], []
        for i in range(repeats):
            plain.append(best_of(lambda: train(spec, data), repeats=1))
            with tracking.tracked_run("bench", f"paired-{i}", {}):
                in_calls.clear()
                tracked.append(best_of(lambda: train(spec, data, on_epoch=log), repeats=1))
        logging_in_calls = sum(in_calls)

        # The project's own tracked run, as the train stage makes it; everything but the
        # epochs themselves is the fixed cost. It is this process's first model export, which
        # pays torch.export's start-up, as the first seed of every train stage does; a second
        # log_model shows what the later seeds of a stage pay.
        bench_params = params.model_copy(update={"mlflow": MlflowConfig(experiment="bench")})
        started = time.perf_counter()
        result, _ = tracked_training(
            spec, data, bench_params, data_hyperparameters(prepared), Path(tmp) / "w",
            lambda epoch, row: None,
        )  # fmt: skip
        fixed_cost = time.perf_counter() - started - result.summary["train_seconds"]
        with tracking.tracked_run("bench", "log-model", {}):
            model_from = time.perf_counter()
            log_model(result, data)
            model_seconds = time.perf_counter() - model_from
        del os.environ["MLFLOW_TRACKING_URI"]
        tracking.user_tracking_uri.cache_clear()
    return {
        "untracked_run_s": min(plain),
        "tracked_run_s": min(tracked),
        "tracking_overhead_pct": 100 * (min(tracked) - min(plain)) / min(plain),
        "logging_calls_s": logging_in_calls,
        "logging_calls_pct": 100 * logging_in_calls / min(plain),
        "fixed_cost_s": fixed_cost,
        "log_model_again_s": model_seconds,
    }


def dvc_noop() -> float | None:
    dvc = str(Path(sys.executable).parent / "dvc")
    status = subprocess.run([dvc, "status", "--json"], cwd=ROOT, capture_output=True,
                            text=True)  # fmt: skip
    if status.returncode != 0 or status.stdout.strip() not in ("{}", ""):
        return None  # not up to date: a no-op cannot be measured
    return best_of(lambda: subprocess.run([dvc, "repro"], cwd=ROOT, capture_output=True,
                                          check=True))  # fmt: skip


def _grid_run(args: tuple[int, int]) -> None:
    threads, seed = args
    torch.set_num_threads(threads)
    params = Params.model_validate({"train": {"epochs": 8}, "variants": {"baseline": {}}})
    data = DeviceData.of(_GRID_DATA, torch.device("cpu"))
    train(run_specs(params, "baseline", [seed])[0], data)


_GRID_DATA: Prepared | None = None


def _init_grid(prepared: Prepared) -> None:
    global _GRID_DATA
    _GRID_DATA = prepared


def grid(prepared: Prepared, cores: int) -> dict[str, float]:
    """4 runs of the default network: in turn with `cores` threads, or `cores` at a time."""
    _init_grid(prepared)
    started = time.perf_counter()
    for seed in range(4):
        _grid_run((cores, seed))
    sequential = time.perf_counter() - started
    spawn = multiprocessing.get_context("spawn")  # no fork of a process with OpenMP threads
    with ProcessPoolExecutor(cores, spawn, initializer=_init_grid, initargs=(prepared,)) as pool:
        list(pool.map(_grid_run, [(1, 0)] * cores))  # warm the workers
        started = time.perf_counter()
        list(pool.map(_grid_run, [(1, s) for s in range(4)]))
        parallel = time.perf_counter() - started
    return {"sequential_s": sequential, "side_by_side_s": parallel,
            "speedup": sequential / parallel}  # fmt: skip


def main() -> None:
    torch.manual_seed(0)
    cores = os.cpu_count() or 1
    threads = torch.get_num_threads()
    out: dict[str, object] = {
        "machine": {"cpu_count": cores, "torch_threads": threads,
                    "processor": platform.processor() or platform.machine()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }  # fmt: skip
    print(f"{cores} cores, torch {torch.__version__} with {threads} threads")

    square = matmul_rate(2048, 2048, 2048)
    shapes = layer_shapes(784, HIDDEN, 10)
    images, labels = synthetic_mnist(N_SAMPLES)
    rows = []
    for batch in (128, 512):
        flops, bound = flop_bound(shapes, batch, N_SAMPLES)
        ours = project_epoch(images, labels, batch)
        rows.append({"batch": batch, "epoch_flops": flops, "flop_bound_s": bound,
                     "trainer_epoch_s": ours, "trainer_vs_bound": ours / bound})  # fmt: skip
    tutorial = tutorial_epoch(images, labels, 128)
    out["matmul_gflops_2048"] = square / 1e9
    out["epochs"] = rows
    out["tutorial_epoch_s_batch128"] = tutorial
    out["trainer_speedup_vs_tutorial_batch128"] = tutorial / rows[0]["trainer_epoch_s"]

    prepared = study_data()
    out["tracking"] = tracking_costs(prepared)
    out["dvc_repro_noop_s"] = dvc_noop()
    out["grid_4_runs"] = grid(prepared, cores)

    print(f"\nmatmul float32 2048³: {square / 1e9:.1f} GFLOP/s")
    print(f"{'':34}{'batch 128':>12}{'batch 512':>12}")
    print(f"{'epoch FLOPs (6·weights·60k)':34}" + "".join(f"{r['epoch_flops'] / 1e9:>11.1f}G"
                                                         for r in rows))  # fmt: skip
    print(f"{'FLOP lower bound, s':34}" + "".join(f"{r['flop_bound_s']:>12.3f}" for r in rows))
    print(f"{'trainer epoch, s':34}" + "".join(f"{r['trainer_epoch_s']:>12.3f}" for r in rows))
    print(f"{'trainer / bound':34}" + "".join(f"{r['trainer_vs_bound']:>12.2f}" for r in rows))
    print(f"{'tutorial loop epoch, s':34}{tutorial:>12.3f}")
    print(f"{'tutorial / trainer':34}{out['trainer_speedup_vs_tutorial_batch128']:>12.1f}")
    t = out["tracking"]
    print(
        f"\ndefault-study run (30 epochs, mnist-5k), fastest of 3 alternated: untracked "
        f"{t['untracked_run_s']:.2f} s, tracked {t['tracked_run_s']:.2f} s "
        f"({t['tracking_overhead_pct']:+.1f} %); inside the logging calls "
        f"{t['logging_calls_s'] * 1000:.0f} ms ({t['logging_calls_pct']:.2f} %)"
    )
    print(
        f"fixed cost of a stage's first run: {t['fixed_cost_s']:.2f} s; log_model again in the "
        f"same process: {t['log_model_again_s']:.2f} s"
    )
    noop = out["dvc_repro_noop_s"]
    print(
        f"dvc repro, nothing to do: {'n/a (not up to date)' if noop is None else f'{noop:.2f} s'}"
    )
    g = out["grid_4_runs"]
    print(
        f"4 runs × 8 epochs: in turn with {cores} threads {g['sequential_s']:.1f} s, "
        f"{cores} side by side with 1 thread {g['side_by_side_s']:.1f} s "
        f"(×{g['speedup']:.2f})"
    )
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "benchmark.json").write_text(json.dumps(out, indent=2) + "\n")
    print("\nwritten: reports/benchmark.json")


if __name__ == "__main__":
    main()
