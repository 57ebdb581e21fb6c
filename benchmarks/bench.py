"""`make bench`: the trainer's speed against references measured in the same run.

Prints a table and writes reports/benchmark.json:
1. the machine's float32 matrix-multiply rate at the network's layer shapes and at a large
   square size, and from it the FLOP lower bound of one training epoch: for a linear layer
   with `i` inputs and `o` outputs, forward 2·i·o FLOPs per sample, backward 4·i·o (the
   gradients of the input and of the weights), i.e. 6 × weights × samples in all; biases,
   activations, the loss and the optimizer are left out (they are O(units), not O(weights));
2. the project's training epoch (`epoch.train_one_epoch`), no tracking, on a 60,000-sample
   MNIST-shaped set made here, at batch 128 and 512;
3. the usual tutorial loop on the same data and model: a Dataset that yields PIL images through
   ToTensor and Normalize, a DataLoader, a Python loop;
   and the trainer's options: bfloat16 autocast and torch.compile (compile time apart);
4. tracking overhead: a default-study run with per-epoch MLflow logging against the same run
   without it (wall and CPU time), and the time spent inside the logging calls;
5. the fixed cost of one tracked run besides training (start, params, artifacts, model, end),
   the first in a process apart, and a one-seed, one-epoch train stage in a fresh process;
6. `dvc repro` with nothing to do;
7. a stack of 10 seeds of the default variant, and `dvc repro -f` of the default study with
   3 and 10 seeds per variant in a scratch copy, each against its arithmetic floor: the
   matrix products of its mini-batches and eval passes at `torch.mm`'s rate at their shapes;
8. the tuned study in one process (`python -m pipeline tuned`: every point of the strength
   paths and the joint grid, seeds of train.seeds, no rounds) against its arithmetic floor
   plus one import of torch and MLflow, and against the same seed-epochs as plain PyTorch
   loops side by side, one per core (`plain_seed_epoch`), plus that import.

`--quick` runs every step once at the smallest sizes (512 samples, short timings, a stack of 2
seeds, a study of 1 seed per variant) on params.yaml's data and settings, and writes
reports/benchmark-quick.json: a check that the benchmark still runs
(tests/e2e/test_documented_commands.py), not a measurement. Like the full run, it needs
`python -m pipeline prepare` done.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.core.architecture import Architecture  # noqa: E402
from pipeline.core.config import DataConfig, MlflowConfig, Params  # noqa: E402
from pipeline.core.loading import load_params  # noqa: E402
from pipeline.core.spec import RunSpec, run_specs  # noqa: E402
from pipeline.data.pool import prepare  # noqa: E402
from pipeline.data.prepared import Prepared  # noqa: E402
from pipeline.executors.tracked_stack import RunContext, execute_stack  # noqa: E402
from pipeline.tracking import lifecycle, store  # noqa: E402
from pipeline.training.device import DeviceData, DeviceSplit  # noqa: E402
from pipeline.training.epoch import Compute, train_one_epoch  # noqa: E402
from pipeline.training.model import build_mlp  # noqa: E402
from pipeline.training.regularization import make_optimizer  # noqa: E402
from pipeline.training.stacks import MLPStack  # noqa: E402
from pipeline.training.trainer import train_stack  # noqa: E402
from tests.support.training import train  # noqa: E402

HIDDEN = [512, 512]
N_SAMPLES = 60_000
# FLOPs per timed repetition of a matrix product: enough for a steady rate; --quick only checks
# that the steps run, and small shapes would take most of its time at the full count.
TIMED_FLOPS = 2e7 if "--quick" in sys.argv else 2e9


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
    reps = max(3, int(TIMED_FLOPS / (2 * m * k * n)))
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
        rate = np.mean(
            [matmul_rate(batch, i, o), matmul_rate(batch, o, i), matmul_rate(i, batch, o)]
        )
        flops += layer
        seconds += layer / rate
    return flops, seconds


def synthetic_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)


def project_epoch(
    images: np.ndarray,
    labels: np.ndarray,
    batch: int,
    precision: str = "float32",
    compile: bool = False,
) -> tuple[float, float]:
    """(fastest epoch, seconds of the first epoch): the first one pays compilation."""
    x = ((images.reshape(len(images), -1) / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    split = DeviceSplit(torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64)))
    params = Params.model_validate(
        {"model": {"hidden_sizes": HIDDEN}, "variants": {"baseline": {}}}
    )
    spec = run_specs(params, "baseline", [0])[0]
    net, optimizer = one_seed(split.x.device, precision, compile)
    shuffle = torch.Generator(device=split.x.device).manual_seed(0)

    def run() -> float:
        return float(train_one_epoch(net, optimizer, split, batch, [shuffle], spec.variant, None))

    first = best_of(run, repeats=1)  # warm-up (and compilation)
    return best_of(run, repeats=2), first


def one_seed(
    device: torch.device, precision: str = "float32", compile: bool = False
) -> tuple[Compute, torch.optim.Optimizer]:
    """The trainer's network for one seed (a stack of one), and its optimizer."""
    torch.manual_seed(0)
    arch = Architecture(784, tuple(HIDDEN), 10)
    stack = MLPStack(arch, [build_mlp(arch).to(device).state_dict()])
    return Compute.of(stack, precision, compile), make_optimizer(stack, "adam", 1e-3, 0.0, False)


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
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )
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
    prepared = prepare(DataConfig())
    return prepared


def tracking_costs(
    prepared: Prepared, repeats: int = 5, params: Params | None = None
) -> dict[str, float]:
    """Per-epoch logging overhead and the fixed cost of one run, against an untracked run.

    The machine is noisy (a run's wall time varies by ±10 %), so tracked and untracked runs
    alternate, one thread each, and the medians count; CPU time (all threads, MLflow's
    background writer included) is compared too, and the time spent inside the logging calls
    themselves is measured, which no noise inflates.
    """
    import mlflow

    params = params or Params.model_validate({"variants": {"baseline": {}}})
    spec = run_specs(params, params.report.baseline, [0])[0]
    data = DeviceData.of(prepared, torch.device("cpu"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train(spec, data)  # warm-up
    in_calls: list[float] = []

    def log(epoch: int, row: dict[str, float]) -> None:
        started = time.perf_counter()
        mlflow.log_metrics(row, step=epoch, synchronous=False)
        in_calls.append(time.perf_counter() - started)

    def timed(fn) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - wall, time.process_time() - cpu

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/bench.db"
        store.user_tracking_uri.cache_clear()
        store.ensure_experiment("bench")  # creating the store is a one-off, not per run
        plain, tracked = [], []
        for i in range(repeats):
            plain.append(timed(lambda: train(spec, data)))
            in_calls.clear()
            # The run's start and end are the fixed cost, measured below; here only the epochs.
            with lifecycle.tracked_run("bench", f"paired-{i}", {}):
                # Until the queued metrics are written: their cost counts.
                tracked.append(
                    timed(lambda: (train(spec, data, on_epoch=log), mlflow.flush_async_logging()))
                )
        logging_in_calls = sum(in_calls)

        # The CPU the tracking itself uses, free of training's noise: the same run's logging
        # (start, 30 queued per-epoch writes, end) with each epoch's training replaced by a
        # sleep of its length.
        epoch_s = float(np.median([t[0] for t in plain])) / spec.train.epochs
        rows = train(spec, data).history
        cpu_started = time.process_time()
        with lifecycle.tracked_run("bench", "tracking-only", {}):
            for epoch, row in enumerate(rows, start=1):
                time.sleep(epoch_s)
                mlflow.log_metrics(row, step=epoch, synchronous=False)
        tracking_cpu = time.process_time() - cpu_started

        # The project's own tracked run, as a train stage makes it; everything but the epochs
        # is the fixed cost. The first one in a process also pays MLflow's scan of the
        # installed packages (once per train stage), shown apart.
        context = RunContext.of(MlflowConfig(experiment="bench"), prepared)
        fixed = []
        for _ in range(3):
            started = time.perf_counter()
            [record] = execute_stack([spec], data, context, lambda i, epoch, row: None)
            fixed.append(time.perf_counter() - started - sum(record.epoch_seconds))
        del os.environ["MLFLOW_TRACKING_URI"]
        store.user_tracking_uri.cache_clear()
    torch.set_num_threads(threads)
    wall_plain, wall_tracked = (float(np.median([t[0] for t in x])) for x in (plain, tracked))
    cpu_plain, cpu_tracked = (float(np.median([t[1] for t in x])) for x in (plain, tracked))
    return {
        "untracked_run_s": wall_plain,
        "tracked_run_s": wall_tracked,
        "tracking_overhead_pct": 100 * (wall_tracked - wall_plain) / wall_plain,
        "tracking_overhead_cpu_pct": 100 * (cpu_tracked - cpu_plain) / cpu_plain,
        "tracking_cpu_s": tracking_cpu,
        "tracking_cpu_pct": 100 * tracking_cpu / wall_plain,
        "logging_calls_s": logging_in_calls,
        "logging_calls_pct": 100 * logging_in_calls / wall_plain,
        "first_fixed_cost_s": fixed[0],
        "fixed_cost_s": min(fixed[1:]),
        "fixed_cost_pct": 100 * min(fixed[1:]) / wall_plain,
    }


def dvc_noop(repeats: int = 3) -> float | None:
    dvc = str(Path(sys.executable).parent / "dvc")
    status = subprocess.run(
        [dvc, "status", "dvc.yaml", "--json"], cwd=ROOT, capture_output=True, text=True
    )
    if status.returncode != 0 or status.stdout.strip() not in ("{}", ""):
        return None  # not up to date: a no-op cannot be measured
    return best_of(
        lambda: subprocess.run([dvc, "repro"], cwd=ROOT, capture_output=True, check=True),
        repeats,
    )


def study_floor(prepared: Prepared, params: Params, seeds: int) -> dict[str, float]:
    """The arithmetic floor of the study as params.yaml defines it, with `seeds` per variant:
    the matrix products of every mini-batch's forward and backward pass and of the eval
    passes over the train and val splits every epoch, each at the study's own shapes, at the
    rate this machine's `torch.mm` reaches there with the trainer's threads per seed
    (`train.threads`), on as many cores as the seeds can share."""
    torch.set_num_threads(params.train.threads)
    hidden = list(params.model.hidden_sizes)
    shapes = layer_shapes(prepared.n_features, hidden, prepared.n_classes)
    n_train, n_eval = len(prepared.train.y), len(prepared.train.y) + len(prepared.val.y)
    batch = params.train.batch_size
    per_seed_epoch = 0.0
    for i, o in shapes:
        train_rate = np.mean(
            [matmul_rate(batch, i, o), matmul_rate(batch, o, i), matmul_rate(i, batch, o)]
        )
        per_seed_epoch += 6 * i * o * n_train / train_rate
        per_seed_epoch += 2 * i * o * n_eval / matmul_rate(min(n_eval, 8192), i, o)
    cores = min(os.cpu_count() or 1, seeds) * params.train.threads
    seed_epochs = params.train.epochs * seeds * len(params.variants)
    return {
        "per_seed_epoch_s": per_seed_epoch,
        "cores": cores,
        "study_s": per_seed_epoch * seed_epochs / cores,
    }


def stack_ratio(prepared: Prepared, params: Params, seeds: int, epochs: int = 3) -> dict:
    """Time per seed-epoch of a stack of `seeds` of the default variant, in this process and
    untracked, against its arithmetic floor (the floor of one seed-epoch over the cores)."""
    specs = [
        RunSpec(
            s.variant_name,
            s.variant,
            s.model,
            s.train.model_copy(update={"epochs": epochs}),
            s.seed,
        )
        for s in run_specs(params, params.report.baseline, list(range(seeds)))
    ]
    data = DeviceData.of(prepared, torch.device("cpu"))
    train_stack(specs[:1], data)  # warm-up
    started = time.perf_counter()
    train_stack(specs, data)
    per_seed_epoch = (time.perf_counter() - started) / (seeds * epochs)
    floor = study_floor(prepared, params, seeds)
    bound = floor["per_seed_epoch_s"] / floor["cores"]
    return {
        "seeds": seeds,
        "per_seed_epoch_s": per_seed_epoch,
        "floor_s": bound,
        "ratio": per_seed_epoch / bound,
    }


def scratch_copy(repo: Path, seeds: int, quick: bool = False) -> dict[str, str]:
    """The repository's tracked files copied to `repo`, with `seeds` per variant and no rounds
    (so that every run the floor counts is trained, no more); with `quick`, one epoch and one
    point of one strength path. The environment its commands run in (its own store)."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["train"]["seeds"] = list(range(seeds))
    raw["rounds"] = None
    if quick:
        raw["train"]["epochs"] = 1
        joint = dict.fromkeys(raw["sweep"].get("combined", {}), [])  # its stage reads each key
        raw["sweep"] = {k: [0.3] if k == "dropout" else [] for k in raw["sweep"]}
        raw["sweep"]["combined"] = joint
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def import_floor(repeats: int = 3) -> float:
    """`python -c "import torch, mlflow"` in a fresh process, fastest of `repeats`: the start-up
    the libraries force on a process that trains and tracks."""
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, mlflow"], check=True)
        walls.append(time.perf_counter() - started)
    return min(walls)


def study_ratio(params: Params, prepared: Prepared, seeds: int) -> dict[str, float]:
    """`dvc repro -f` of the default study, with `seeds` per variant and no rounds (so that
    every variant trains exactly `seeds`, as the floor counts), in a scratch copy of the
    repository (with its own store), against the study's arithmetic floor."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        env = scratch_copy(repo, seeds)
        started = time.perf_counter()
        subprocess.run(["dvc", "repro", "-f"], cwd=repo, env=env, capture_output=True, check=True)
        wall = time.perf_counter() - started
    floor = study_floor(prepared, params, seeds)
    return {
        "seeds": seeds,
        "wall_s": wall,
        "floor_s": floor["study_s"],
        "ratio": wall / floor["study_s"],
    }


def plain_seed_epoch(prepared: Prepared, params: Params, repeats: int = 3) -> float:
    """Wall time per seed-epoch of plain PyTorch loops at the study's shapes, one per core side
    by side (threads of `train.threads`, as the trainer's lanes run): each the MLP of
    params.yaml (`nn.Linear` and ReLU), fused Adam, its training split in mini-batches of
    `train.batch_size` (shuffled tensors, no DataLoader), then one eval pass over the train
    and val splits, as every epoch of the trainer makes. What the arithmetic costs with the
    framework's own overhead, and the cores' sharing of memory, but no project: a reference
    for the project's runs."""
    torch.set_num_threads(params.train.threads)
    cores = max(1, (os.cpu_count() or 1) // params.train.threads)
    x = torch.from_numpy(prepared.train.x.reshape(len(prepared.train.y), -1)).float()
    y = torch.from_numpy(prepared.train.y).long()
    x_eval = torch.cat([x, torch.from_numpy(prepared.val.x.reshape(len(prepared.val.y), -1))])
    batch = params.train.batch_size

    def seed(k: int) -> Callable[[], None]:
        torch.manual_seed(k)
        sizes = [prepared.n_features, *params.model.hidden_sizes]
        layers: list[torch.nn.Module] = []
        for i, o in zip(sizes, sizes[1:], strict=False):
            layers += [torch.nn.Linear(i, o), torch.nn.ReLU()]
        net = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], prepared.n_classes))
        optimizer = torch.optim.Adam(net.parameters(), lr=params.train.lr, fused=True)

        def epoch() -> None:
            order = torch.randperm(len(y))
            xs, ys = x[order], y[order]
            for i in range(0, len(ys), batch):
                out = net(xs[i : i + batch])
                loss = torch.nn.functional.cross_entropy(out, ys[i : i + batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                net(x_eval.float())

        return epoch

    epochs = [seed(k) for k in range(cores)]

    def side_by_side() -> None:
        with ThreadPoolExecutor(max_workers=cores) as pool:
            list(pool.map(lambda run: run(), epochs))

    side_by_side()  # warm-up
    return best_of(side_by_side, repeats) / cores


def tuned_ratio(
    params: Params, prepared: Prepared, seeds: int, quick: bool = False
) -> dict[str, float]:
    """`python -m pipeline tuned` (every point of the strength paths and the joint grid in one
    process, then the choice and the reports) in a scratch copy whose study `dvc repro` has
    made, with `seeds` per point and no rounds, against its floor: the arithmetic of the
    seed-epochs it trained (at the study's shapes, as `study_floor`) plus one process's
    import of torch and MLflow, measured here too."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        env = scratch_copy(repo, seeds, quick)
        subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, check=True)
        command = [sys.executable, "-m", "pipeline", "tuned"]
        started = time.perf_counter()
        subprocess.run(command, cwd=repo, env=env, capture_output=True, check=True)
        wall = time.perf_counter() - started
        points = list((repo / "sweeps").rglob("seed*.json"))
        seed_epochs = sum(json.loads(p.read_text())["summary"]["epochs_run"] for p in points)
    floor = study_floor(prepared, params, seeds)
    imports = import_floor(1 if quick else 3)
    bound = floor["per_seed_epoch_s"] * seed_epochs / floor["cores"] + imports
    plain = plain_seed_epoch(prepared, params, 1 if quick else 3)  # wall, the cores shared
    loop = plain * seed_epochs + imports
    return {
        "seeds": seeds,
        "runs": len(points),
        "seed_epochs": seed_epochs,
        "wall_s": wall,
        "import_s": imports,
        "floor_s": bound,
        "ratio": wall / bound,
        "plain_loop_s": loop,  # the same seed-epochs as plain loops, a core each, one import
        "ratio_to_plain_loop": wall / loop,
    }


def stage_start(repeats: int = 3) -> dict[str, float]:
    """A train stage of one seed and one epoch in a fresh process (a scratch store), fastest
    of 3: start-up, the epoch and the run's fixed cost."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/start.db"}
        command = [sys.executable, "-m", "pipeline", "train", "--variant", "baseline"]
        command += ["--epochs", "1", "--seed", "0"]
        walls = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, env=env, capture_output=True, check=True)
            walls.append(time.perf_counter() - started)
    return {"one_epoch_stage_s": min(walls)}


def gpu_epoch(images: np.ndarray, labels: np.ndarray, batch: int) -> dict[str, float]:
    """One epoch on the GPU: wall time against the GPU's busy time and the kernel count. An
    epoch bound by kernel launches shows a GPU mostly idle and a few µs of wall per kernel."""
    from torch.profiler import ProfilerActivity, profile

    device = torch.device("cuda")
    x = ((images.reshape(len(images), -1) / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    split = DeviceSplit(
        torch.from_numpy(x).to(device), torch.from_numpy(labels.astype(np.int64)).to(device)
    )
    params = Params.model_validate({"variants": {"baseline": {}}})
    spec = run_specs(params, "baseline", [0])[0]
    net, optimizer = one_seed(device)
    shuffle = torch.Generator(device=device).manual_seed(0)

    def run() -> None:
        float(train_one_epoch(net, optimizer, split, batch, [shuffle], spec.variant, None)[0])

    run()
    wall = best_of(run, repeats=3)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
    kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
    busy = sum(e.device_time for e in kernels) / 1e6
    steps = -(-len(labels) // batch)
    return {
        "batch": batch,
        "epoch_s": wall,
        "gpu_busy_s": busy,
        "kernels": len(kernels),
        "steps": steps,
        "wall_per_kernel_us": 1e6 * wall / max(1, len(kernels)),
        "gpu_busy_pct": 100 * busy / wall,
    }


def main() -> None:
    only_epochs = "--epochs-only" in sys.argv  # for a machine without MLflow / DVC (a GPU box)
    quick = "--quick" in sys.argv
    samples = 512 if quick else N_SAMPLES
    torch.manual_seed(0)
    cores = os.cpu_count() or 1
    threads = torch.get_num_threads()
    out: dict[str, object] = {
        "machine": {
            "cpu_count": cores,
            "torch_threads": threads,
            "processor": platform.processor() or platform.machine(),
        },
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
    print(f"{cores} cores, torch {torch.__version__} with {threads} threads")
    if quick:
        print("--quick: every step once at the smallest sizes; the numbers measure nothing")

    square = matmul_rate(2048, 2048, 2048)
    shapes = layer_shapes(784, HIDDEN, 10)
    images, labels = synthetic_mnist(samples)
    rows = []
    for batch in (128, 512):
        flops, bound = flop_bound(shapes, batch, samples)
        ours, _ = project_epoch(images, labels, batch)
        rows.append(
            {
                "batch": batch,
                "epoch_flops": flops,
                "flop_bound_s": bound,
                "trainer_epoch_s": ours,
                "trainer_vs_bound": ours / bound,
            }
        )
    tutorial = tutorial_epoch(images, labels, 128)
    bf16, _ = project_epoch(images, labels, 512, precision="bfloat16")
    compiled, first = project_epoch(images, labels, 512, compile=True)
    out["matmul_gflops_2048"] = square / 1e9
    out["epochs"] = rows
    out["tutorial_epoch_s_batch128"] = tutorial
    out["trainer_speedup_vs_tutorial_batch128"] = tutorial / rows[0]["trainer_epoch_s"]
    out["options_batch512"] = {
        "float32_s": rows[1]["trainer_epoch_s"],
        "bfloat16_s": bf16,
        "compiled_s": compiled,
        "compiled_first_epoch_s": first,
    }
    if torch.cuda.is_available():
        out["gpu"] = {
            "name": torch.cuda.get_device_name(),
            "epochs": [gpu_epoch(images, labels, b) for b in (128, 512)],
        }
    if not only_epochs and quick:
        params = load_params(ROOT / "params.yaml")
        prepared = prepare(params.data)
        out["tracking"] = tracking_costs(prepared, repeats=1, params=params)
        out["dvc_repro_noop_s"] = dvc_noop(repeats=1)
        out["stage_start"] = stage_start(repeats=1)
        out["stack"] = stack_ratio(prepared, params, 2, epochs=1)
        out["study"] = [study_ratio(params, prepared, 1)]
        out["tuned"] = tuned_ratio(params, prepared, 1, quick=True)
    elif not only_epochs:
        prepared = study_data()
        params = load_params(ROOT / "params.yaml")
        out["tracking"] = tracking_costs(prepared)
        out["dvc_repro_noop_s"] = dvc_noop()
        out["stage_start"] = stage_start()
        out["stack"] = stack_ratio(prepared, params, 10)
        out["study"] = [study_ratio(params, prepared, n) for n in (len(params.train.seeds), 10)]
        out["tuned"] = tuned_ratio(params, prepared, len(params.train.seeds))
    print_table(out, cores, samples)
    name = "benchmark.json" if not only_epochs else "benchmark-epochs.json"
    name = "benchmark-quick.json" if quick else name
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / name).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwritten: reports/{name}")


def print_table(out: dict, cores: int, samples: int = N_SAMPLES) -> None:
    rows = out["epochs"]
    print(f"\nmatmul float32 2048³: {out['matmul_gflops_2048']:.1f} GFLOP/s")
    print(f"{'':34}{'batch 128':>12}{'batch 512':>12}")
    print(
        f"{f'epoch FLOPs (6·weights·{samples / 1000:g}k)':34}"
        + "".join(f"{r['epoch_flops'] / 1e9:>11.1f}G" for r in rows)
    )
    print(f"{'FLOP lower bound, s':34}" + "".join(f"{r['flop_bound_s']:>12.3f}" for r in rows))
    print(f"{'trainer epoch, s':34}" + "".join(f"{r['trainer_epoch_s']:>12.3f}" for r in rows))
    print(f"{'trainer / bound':34}" + "".join(f"{r['trainer_vs_bound']:>12.2f}" for r in rows))
    print(f"{'tutorial loop epoch, s':34}{out['tutorial_epoch_s_batch128']:>12.3f}")
    print(f"{'tutorial / trainer':34}{out['trainer_speedup_vs_tutorial_batch128']:>12.1f}")
    o = out["options_batch512"]
    print(
        f"\nbatch 512 epoch: float32 {o['float32_s']:.3f} s, bfloat16 autocast "
        f"{o['bfloat16_s']:.3f} s (×{o['float32_s'] / o['bfloat16_s']:.2f}), torch.compile "
        f"{o['compiled_s']:.3f} s (×{o['float32_s'] / o['compiled_s']:.2f}; first epoch with "
        f"compilation {o['compiled_first_epoch_s']:.1f} s)"
    )
    for g in out.get("gpu", {}).get("epochs", []):
        print(
            f"{out['gpu']['name']}, batch {g['batch']}: epoch {g['epoch_s'] * 1000:.0f} ms, "
            f"GPU busy {g['gpu_busy_pct']:.0f} %, {g['kernels']} kernels in {g['steps']} steps, "
            f"{g['wall_per_kernel_us']:.1f} µs of wall per kernel"
        )
    if "tracking" not in out:
        return
    t = out["tracking"]
    print(
        f"\ndefault-study run (30 epochs, mnist-5k, 1 thread), median of 5 alternated: "
        f"untracked {t['untracked_run_s']:.2f} s, tracked {t['tracked_run_s']:.2f} s "
        f"(wall {t['tracking_overhead_pct']:+.1f} %, CPU {t['tracking_overhead_cpu_pct']:+.1f} %);"
        f" inside the logging calls {t['logging_calls_s'] * 1000:.0f} ms "
        f"({t['logging_calls_pct']:.2f} %); CPU of the tracking alone (training replaced by "
        f"sleeps) {t['tracking_cpu_s'] * 1000:.0f} ms ({t['tracking_cpu_pct']:.2f} %)"
    )
    print(
        f"fixed cost of a run: {t['fixed_cost_s']:.2f} s ({t['fixed_cost_pct']:.1f} % of the "
        f"run), the first in a process {t['first_fixed_cost_s']:.2f} s; a train stage of one "
        f"seed and one epoch, fresh process: {out['stage_start']['one_epoch_stage_s']:.2f} s"
    )
    noop = out["dvc_repro_noop_s"]
    print(
        f"dvc repro, nothing to do: {'n/a (not up to date)' if noop is None else f'{noop:.2f} s'}"
    )
    k = out["stack"]
    print(
        f"\nstack of {k['seeds']} seeds, default variant: {k['per_seed_epoch_s'] * 1000:.0f} ms "
        f"per seed-epoch, arithmetic floor {k['floor_s'] * 1000:.0f} ms: ×{k['ratio']:.2f}"
    )
    for st in out["study"]:
        print(
            f"dvc repro -f of the default study, {st['seeds']} seeds per variant: "
            f"{st['wall_s']:.0f} s, arithmetic floor {st['floor_s']:.0f} s: ×{st['ratio']:.2f}"
        )
    tu = out["tuned"]
    print(
        f"python -m pipeline tuned, {tu['seeds']} seeds per point ({tu['runs']} runs, "
        f"{tu['seed_epochs']:.0f} seed-epochs): {tu['wall_s']:.0f} s, floor {tu['floor_s']:.0f} "
        f"s (arithmetic + one import of torch and mlflow, {tu['import_s']:.1f} s): "
        f"×{tu['ratio']:.2f}; the same seed-epochs as plain PyTorch loops (fused Adam, no "
        f"tracking) {tu['plain_loop_s']:.0f} s: ×{tu['ratio_to_plain_loop']:.2f}"
    )


if __name__ == "__main__":
    main()
