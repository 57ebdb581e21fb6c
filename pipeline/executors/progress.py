"""What a person watching a training sees: a progress bar or one line per epoch, and one line
per finished run."""

from __future__ import annotations

import sys

import click

from ..core.spec import RunSpec


class StackReporter:
    """A progress bar over a stack's epochs on a terminal; one plain line per seed and epoch
    otherwise."""

    def __init__(self, specs: list[RunSpec]):
        self.specs = specs
        self.bar = None
        self.shown = 0
        if sys.stderr.isatty():
            first = specs[0]
            label = first.run_name if len(specs) == 1 else f"{first.variant_name} ×{len(specs)}"
            self.bar = click.progressbar(
                length=first.train.epochs, label=f"{label:>20}", file=sys.stderr
            )
            self.bar.__enter__()

    def __call__(self, i: int, epoch: int, row: dict[str, float]) -> None:
        if self.bar is not None:
            if epoch > self.shown:  # the stack's epoch: its first seed to report it
                self.bar.update(epoch - self.shown)
                self.shown = epoch
            return
        spec = self.specs[i]
        click.echo(
            f"{spec.run_name} epoch {epoch}/{spec.train.epochs}: "
            f"train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} "
            f"gap {row['loss_gap']:+.4f} val_acc {row['val_accuracy']:.4f}",
            err=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def quiet(i: int, epoch: int, row: dict[str, float]) -> None:
    """No line per epoch (a Ray worker's: the driver prints one per finished run)."""


def summary_line(summary: dict[str, float]) -> str:
    """A finished run in one line."""
    return (
        f"best epoch {summary['best_epoch']:.0f}, val loss {summary['best_val_loss']:.4f}, "
        f"gap at last epoch {summary['loss_gap_last']:+.4f}, "
        f"test accuracy {summary['test_accuracy']:.4f}"
    )
