"""Training report plots: the loss curves and predicted versus recorded commands.

Drawn with matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autodrive.errors import require


def _pyplot():
    matplotlib = require("matplotlib", extra="train")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", extra="train")


def plot_history(history: dict[str, list[float]], best_epoch: int, title: str, path: Path) -> None:
    """Save the training and validation curves of every metric, one panel per metric."""
    plt = _pyplot()
    names = [name for name in history if not name.startswith("val_") and f"val_{name}" in history]
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    epochs = np.arange(1, len(history[names[0]]) + 1)

    for axis, name in zip(axes[0], names):
        axis.plot(epochs, history[name], marker=".", label="training")
        axis.plot(epochs, history[f"val_{name}"], marker=".", label="validation")
        axis.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    axes[0][0].legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_predictions(
    recorded: dict[str, np.ndarray],
    predicted: dict[str, np.ndarray],
    title: str,
    path: Path,
) -> None:
    """Save predicted versus recorded angle and throttle of the validation frames.

    The top row plots each prediction against its recording (points on the
    diagonal are exact); the bottom row plots both in record order.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(2, 2, figsize=(10, 7))

    for column, name in enumerate(("angle", "throttle")):
        truth, guess = recorded[name], predicted[name]
        low = float(min(truth.min(), guess.min()))
        high = float(max(truth.max(), guess.max()))

        scatter = axes[0][column]
        scatter.scatter(truth, guess, s=6, alpha=0.5)
        scatter.plot([low, high], [low, high], color="grey", linestyle=":")
        scatter.set_xlabel(f"recorded {name}")
        scatter.set_ylabel(f"predicted {name}")
        mae = float(np.mean(np.abs(truth - guess)))
        scatter.set_title(f"{name}: validation MAE {mae:.3f}")
        scatter.grid(alpha=0.3)

        series = axes[1][column]
        series.plot(truth, label="recorded", linewidth=1)
        series.plot(guess, label="predicted", linewidth=1)
        series.set_xlabel("validation frame")
        series.set_ylabel(name)
        series.legend()
        series.grid(alpha=0.3)

    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
