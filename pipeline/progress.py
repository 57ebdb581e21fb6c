"""What a person watching a run sees: a progress bar or one line per epoch, and one line per
finished run."""

from __future__ import annotations

import sys

import click

from .spec import RunSpec


class EpochReporter:
    """A progress bar over epochs on a terminal (one run at a time); one plain line per epoch
    otherwise."""

    def __init__(self, spec: RunSpec, live_bar: bool = True):
        self.spec = spec
        self.bar = None
        if live_bar and sys.stderr.isatty():
            self.bar = click.progressbar(
                length=spec.train.epochs, label=f"{spec.run_name:>20}", file=sys.stderr
            )
            self.bar.__enter__()

    def __call__(self, epoch: int, row: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            return
        click.echo(
            f"{self.spec.run_name} epoch {epoch}/{self.spec.train.epochs}: "
            f"train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} "
            f"gap {row['loss_gap']:+.4f} val_acc {row['val_accuracy']:.4f}",
            err=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def quiet(epoch: int, row: dict[str, float]) -> None:
    """No line per epoch (a Ray worker's: the driver prints one per finished run)."""


def summary_line(summary: dict[str, float]) -> str:
    """A finished run in one line."""
    return (
        f"best epoch {summary['best_epoch']:.0f}, val loss {summary['best_val_loss']:.4f}, "
        f"gap at last epoch {summary['loss_gap_last']:+.4f}, "
        f"test accuracy {summary['test_accuracy']:.4f}"
    )
