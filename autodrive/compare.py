"""Compare a pilot's recorded outputs with the person's commands in the same tub.

A replay (``autodrive drive --model M --set camera.type=replay``) records
``pilot/angle`` and ``pilot/throttle`` beside the person's ``user/angle`` and
``user/throttle`` for every frame. ``compare_tub`` reports how far apart they
are on each channel, as mean absolute error (MAE) and root-mean-square error
(RMSE).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from autodrive import channels as ch
from autodrive.commands._common import common_options
from autodrive.errors import AutodriveError

log = logging.getLogger(__name__)

# (name shown, pilot channel, person's channel)
PAIRS = (
    ("angle", ch.PILOT_ANGLE, ch.USER_ANGLE),
    ("throttle", ch.PILOT_THROTTLE, ch.USER_THROTTLE),
)


class CompareError(AutodriveError, ValueError):
    """A tub cannot be compared because it contains no pilot outputs."""


@dataclass
class ChannelError:
    """Error between the pilot and the person on one channel, over the records that have both values."""

    name: str
    count: int
    mae: float
    rmse: float
    max_abs: float
    skipped: int


def compare_tub(path: str | Path) -> list[ChannelError]:
    """Return the per-channel error between pilot/* and user/* over the tub's records.

    Records where either value is missing (None, NaN or infinite) are skipped
    and counted. Raises CompareError when the tub has no pilot outputs.
    """
    from autodrive.tub import open_tub

    tub = open_tub(path)
    missing = [pilot for _, pilot, _ in PAIRS if pilot not in tub.inputs]
    if missing:
        raise CompareError(
            f"tub {tub.path} has no {' or '.join(missing)} channel, so it contains no pilot outputs to compare; "
            "record one by replaying a tub with 'autodrive drive --model MODEL --set camera.type=replay "
            "--set camera.replay_tub=TUB --set recording.tub=OTHER_TUB'"
        )

    errors = {name: [] for name, _, _ in PAIRS}
    skipped = {name: 0 for name, _, _ in PAIRS}
    for record in tub.records():
        for name, pilot, user in PAIRS:
            predicted = _finite(record.values.get(pilot))
            actual = _finite(record.values.get(user))
            if predicted is None or actual is None:
                skipped[name] += 1
            else:
                errors[name].append(predicted - actual)

    results = []
    for name, _, _ in PAIRS:
        values = errors[name]
        if values:
            mae = math.fsum(abs(value) for value in values) / len(values)
            rmse = math.sqrt(math.fsum(value * value for value in values) / len(values))
            peak = max(abs(value) for value in values)
        else:
            mae = rmse = peak = math.nan
        results.append(ChannelError(name, len(values), mae, rmse, peak, skipped[name]))
    return results


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def format_errors(path: str | Path, results: list[ChannelError]) -> str:
    """Return the comparison as a small table."""
    lines = [f"pilot vs person in {path}", f"{'channel':<10} {'records':>8} {'MAE':>8} {'RMSE':>8} {'max':>8} {'skipped':>8}"]
    for result in results:
        lines.append(
            f"{result.name:<10} {result.count:>8} {result.mae:>8.4f} {result.rmse:>8.4f} "
            f"{result.max_abs:>8.4f} {result.skipped:>8}"
        )
    return "\n".join(lines)


@click.command(name="compare")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@common_options
def compare_command(app: Any, path: Path, as_json: bool) -> None:
    """Report the error (MAE, RMSE, per channel) between the pilot's and the person's commands in a tub."""
    results = compare_tub(path)
    if as_json:
        import json

        click.echo(json.dumps({result.name: vars(result) for result in results}, indent=2))
    else:
        click.echo(format_errors(path, results))
