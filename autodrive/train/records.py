"""Gather training examples from tubs and check them before TensorFlow starts.

Every record of every tub is read through :func:`autodrive.tub.open_tub`.
A record whose image is missing, truncated or not a readable JPEG, or whose
angle or throttle is null, not finite or outside -1..1, is skipped and counted
by reason. Only image headers are read here (with Pillow), so this pass is
fast: the pixels are decoded later by the ``tf.data`` pipeline.
"""

from __future__ import annotations

import collections
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from autodrive import channels
from autodrive.errors import AutodriveError, require

log = logging.getLogger(__name__)

_JPEG_END = b"\xff\xd9"
_TAIL_BYTES = 64  # some cameras pad a JPEG with zero bytes after its end marker


class TrainingDataError(AutodriveError, ValueError):
    """The tubs given to the trainer cannot produce a model. The message states what to do."""


@dataclass
class Examples:
    """Usable records of one or more tubs, in tub order then index order.

    ``memory`` is None unless memory pairs were requested. Otherwise row ``i``
    contains the ``memory_length`` (angle, throttle) pairs recorded before
    example ``i`` in the same tub, flattened, newest last.
    """

    image_paths: list[str]
    angles: np.ndarray
    throttles: np.ndarray
    tub_ids: np.ndarray
    record_indexes: np.ndarray
    image_width: int
    image_height: int
    tubs: list[str]
    memory: np.ndarray | None = None
    skipped: collections.Counter = field(default_factory=collections.Counter)

    def __len__(self) -> int:
        return len(self.image_paths)

    def subset(self, positions: np.ndarray) -> "Examples":
        """Return the examples at ``positions``, keeping the tub list and image size."""
        return Examples(
            image_paths=[self.image_paths[i] for i in positions],
            angles=self.angles[positions],
            throttles=self.throttles[positions],
            tub_ids=self.tub_ids[positions],
            record_indexes=self.record_indexes[positions],
            image_width=self.image_width,
            image_height=self.image_height,
            tubs=self.tubs,
            memory=None if self.memory is None else self.memory[positions],
            skipped=self.skipped,
        )


def find_tubs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand each path to tub folders: a tub itself, or a folder whose sub-folders are tubs.

    Raises TrainingDataError when a path does not exist or contains no tub.
    """
    tubs: list[Path] = []
    for path_text in paths:
        path = Path(path_text).expanduser()
        if not path.exists():
            raise TrainingDataError(f"tub folder {path} not found; pass an existing tub with --tub PATH")
        if _looks_like_tub(path):
            tubs.append(path)
            continue
        children = sorted(child for child in path.iterdir() if child.is_dir() and _looks_like_tub(child))
        if not children:
            raise TrainingDataError(
                f"no tubs found in {path} (a tub has manifest.json or meta.json); "
                f"record one with 'autodrive drive' or pass a tub folder with --tub PATH"
            )
        tubs.extend(children)
    if not tubs:
        raise TrainingDataError("no tubs given; pass at least one with --tub PATH")
    return tubs


def _looks_like_tub(path: Path) -> bool:
    return path.is_dir() and ((path / "manifest.json").is_file() or (path / "meta.json").is_file())


def collect_examples(tub_paths: list[Path], memory_length: int = 0) -> Examples:
    """Read every record of ``tub_paths`` and return the usable ones with the skip counts.

    ``memory_length`` > 0 also builds the memory pairs of each example; the
    pairs before the first record of a tub are (0, 0), a car standing still.
    Raises TrainingDataError when the tubs hold frames of different sizes or
    no usable record.
    """
    from autodrive.tub import open_tub

    image_module = require("PIL.Image", extra="train")

    image_paths: list[str] = []
    angles: list[float] = []
    throttles: list[float] = []
    tub_ids: list[int] = []
    record_indexes: list[int] = []
    memory_rows: list[list[float]] = []
    skipped: collections.Counter = collections.Counter()
    tub_sizes: dict[str, tuple[int, int]] = {}

    for tub_id, tub_path in enumerate(tub_paths):
        tub = open_tub(tub_path)
        # The tub reader sets aside records whose image file is missing or cut
        # off; they count as skipped records here too.
        for reason in getattr(tub, "unusable", {}).values():
            skipped[reason] += 1
        history = collections.deque([0.0] * (2 * memory_length), maxlen=2 * memory_length)
        tub_size: tuple[int, int] | None = None

        for record in tub.records():
            angle, throttle, label_problem = _read_labels(record.values)
            if label_problem is not None:
                skipped[label_problem] += 1
                continue

            size, image_problem = _read_image_header(record.image_path, image_module)
            if image_problem is None and tub_size is not None and size != tub_size:
                image_problem = f"image size differs from the rest of its tub ({tub_size[0]}x{tub_size[1]} px)"

            if image_problem is None:
                tub_size = tub_size or size
                image_paths.append(str(record.image_path))
                angles.append(angle)
                throttles.append(throttle)
                tub_ids.append(tub_id)
                record_indexes.append(record.index)
                if memory_length:
                    memory_rows.append(list(history))
            else:
                skipped[image_problem] += 1

            # The memory pairs follow the commands that were recorded, even
            # where a frame is unusable, because the car saw those commands.
            if memory_length:
                history.extend((angle, throttle))

        if tub_size is not None:
            tub_sizes[str(tub_path)] = tub_size

    _check_sizes(tub_sizes)
    if not image_paths:
        reasons = _format_reasons(skipped) or "the tubs are empty"
        raise TrainingDataError(
            f"no usable records in {', '.join(str(path) for path in tub_paths)} ({reasons}); "
            f"record more data with 'autodrive drive' or check the tubs with 'autodrive tub info'"
        )

    width, height = next(iter(tub_sizes.values()))
    return Examples(
        image_paths=image_paths,
        angles=np.asarray(angles, dtype=np.float32),
        throttles=np.asarray(throttles, dtype=np.float32),
        tub_ids=np.asarray(tub_ids, dtype=np.int32),
        record_indexes=np.asarray(record_indexes, dtype=np.int64),
        image_width=width,
        image_height=height,
        tubs=[str(path) for path in tub_paths],
        memory=np.asarray(memory_rows, dtype=np.float32).reshape(len(image_paths), 2 * memory_length)
        if memory_length else None,
        skipped=skipped,
    )


def _read_labels(values: dict) -> tuple[float, float, str | None]:
    """Return (angle, throttle, None), or a problem description instead of None."""
    angle = values.get(channels.USER_ANGLE)
    throttle = values.get(channels.USER_THROTTLE)
    for name, value in (("angle", angle), ("throttle", throttle)):
        if value is None:
            return 0.0, 0.0, f"{name} is null"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return 0.0, 0.0, f"{name} is not a number"
        if not math.isfinite(value):
            return 0.0, 0.0, f"{name} is not finite"
        if not -1.0 <= value <= 1.0:
            return 0.0, 0.0, f"{name} is outside -1..1"
    return float(angle), float(throttle), None


def _read_image_header(image_path: Path | None, image_module) -> tuple[tuple[int, int], str | None]:
    """Return ((width, height), None) for a complete JPEG, or a problem description."""
    if image_path is None:
        return (0, 0), "record has no image"
    try:
        with image_module.open(image_path) as image:
            image_format, size = image.format, image.size
        with open(image_path, "rb") as stream:
            file_size = stream.seek(0, 2)
            stream.seek(max(0, file_size - _TAIL_BYTES))
            ending = stream.read().rstrip(b"\x00")[-2:]
    except FileNotFoundError:
        return (0, 0), "image file is missing"
    except (OSError, SyntaxError, ValueError):
        # Pillow raises UnidentifiedImageError (an OSError) for an unreadable
        # header and SyntaxError or ValueError for some malformed ones.
        return (0, 0), "image is corrupt"
    if image_format != "JPEG":
        return (0, 0), "image is not a JPEG"
    if ending != _JPEG_END:
        return (0, 0), "image is truncated"
    return size, None


def _check_sizes(tub_sizes: dict[str, tuple[int, int]]) -> None:
    sizes = set(tub_sizes.values())
    if len(sizes) <= 1:
        return
    listed = ", ".join(f"{path} {width}x{height} px" for path, (width, height) in tub_sizes.items())
    raise TrainingDataError(
        f"tubs have different image sizes ({listed}); train on tubs recorded at one camera size, "
        f"one size per 'autodrive train' run"
    )


def _format_reasons(skipped: collections.Counter) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in skipped.most_common())


def describe_skipped(skipped: collections.Counter) -> str:
    """Return the skip counts as one line, for example ``3 image file is missing, 1 angle is null``."""
    return _format_reasons(skipped) or "none"
