"""Tub tools behind ``autodrive tub``: summaries, index ranges, checks and conversion."""

from __future__ import annotations

import logging
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodrive import channels
from autodrive.tub.reader import FORMAT_LEGACY, FORMAT_V2, Tub, open_tub
from autodrive.tub.record import (
    CATALOG_MANIFEST_MISSING,
    CATALOG_MISSING,
    CURRENT_INDEX_WRONG,
    IMAGE_TYPES,
    LINE_LENGTHS_WRONG,
    NO_FINAL_NEWLINE,
    NOTES,
    TRUNCATED_LINE,
    TubError,
    is_junk_name,
)
from autodrive.tub.v2 import repair_tub
from autodrive.tub.writer import TubWriter

log = logging.getLogger(__name__)

# Capture times closer than this are not real: drive.loop_hz allows at most 200 Hz.
MAX_PLAUSIBLE_RATE_HZ = 200.0
# A pause longer than this between records starts a new stretch of driving.
GAP_S = 1.0
HISTOGRAM_BINS = 10

_RANGE_PART = re.compile(r"^\s*(\d+)?\s*(:)?\s*(\d+)?\s*$")


def parse_ranges(text: str, end: int) -> set[int]:
    """Parse index ranges such as ``100:250,400`` into a set of indexes.

    ``A:B`` is A up to but not including B, as in a Python slice; ``A:``
    runs to ``end`` (exclusive) and ``:B`` starts at 0. Raises TubError
    naming the part that is not a range.
    """
    indexes: set[int] = set()
    for part in text.split(","):
        match = _RANGE_PART.match(part)
        if not match or (match.group(2) is None and (match.group(1) is None or match.group(3) is not None)):
            raise TubError(f"invalid range {part.strip()!r} in {text!r}; write ranges like 100:250,400 "
                           f"(100:250 is 100 to 249, as in a Python slice)")
        first, colon, last = match.groups()
        if colon is None:
            indexes.add(int(first))
            continue
        start = int(first) if first is not None else 0
        stop = int(last) if last is not None else end
        if stop < start:
            raise TubError(f"invalid range {part.strip()!r}: the start is after the end")
        indexes.update(range(start, stop))
    return indexes


@dataclass
class TubSummary:
    """Summary of one tub, as ``autodrive tub info`` prints it."""

    path: Path
    format: str
    records: int
    deleted: int
    unusable: int
    sessions: list[str]
    duration_s: float | None
    frame_rate_hz: float | None
    timestamp_note: str | None
    histograms: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    problems: dict[str, int] = field(default_factory=dict)


def summarize(tub: Tub) -> TubSummary:
    """Count records, sessions and problems, and judge whether the timestamps are capture times."""
    records = list(tub.records())
    sessions = list(tub.sessions)
    for record in records:
        if record.session_id is not None and record.session_id not in sessions:
            sessions.append(record.session_id)

    duration_s, rate_hz, note = _timing(records)
    histograms = {}
    for name in (channels.USER_ANGLE, channels.USER_THROTTLE):
        numbers = [record.values.get(name) for record in records]
        numbers = [number for number in numbers if isinstance(number, float)]
        if numbers:
            histograms[name] = np.histogram(numbers, bins=HISTOGRAM_BINS, range=(-1.0, 1.0))

    return TubSummary(
        path=tub.path,
        format=tub.format,
        records=len(records),
        deleted=len(tub.deleted_indexes & set(tub.indexes)),
        unusable=len(tub.unusable),
        sessions=sessions,
        duration_s=duration_s,
        frame_rate_hz=rate_hz,
        timestamp_note=note,
        histograms=histograms,
        problems=dict(tub.problems),
    )


def _timing(records: list) -> tuple[float | None, float | None, str | None]:
    """Return duration, frame rate and a note, from the records' timestamps.

    Steps longer than ``GAP_S`` (pauses, new sessions) are left out. When
    the median step is shorter than a 200 Hz loop allows, the timestamps
    were not taken at capture (a converter from the old format wrote them),
    so neither duration nor rate is given.
    """
    times = [record.timestamp_ms for record in records if record.timestamp_ms is not None]
    if len(times) < 2:
        return None, None, "too few timestamps to measure a frame rate"
    steps_ms = [later - earlier for earlier, later in zip(times, times[1:])]
    driving = [step for step in steps_ms if 0 < step <= GAP_S * 1000]
    if not driving:
        return None, None, "timestamps do not increase, so they are not capture times"
    median_ms = statistics.median(driving)
    rate_hz = 1000.0 / median_ms
    if rate_hz > MAX_PLAUSIBLE_RATE_HZ:
        return None, None, (
            f"timestamps are {median_ms:g} ms apart (about {rate_hz:.0f} Hz), faster than any recording loop; "
            f"they are not capture times, so duration and frame rate are unknown"
        )
    return sum(driving) / 1000.0, rate_hz, None


def format_summary(summary: TubSummary) -> str:
    """Return the text ``autodrive tub info`` prints for one tub."""
    lines = [f"{summary.path} ({'Tub v2' if summary.format == FORMAT_V2 else 'old Donkey format'})"]
    lines.append(f"  records: {summary.records} usable, {summary.deleted} deleted, {summary.unusable} unusable")
    lines.append(f"  sessions: {len(summary.sessions)}" + (f" ({', '.join(summary.sessions)})" if summary.sessions else ""))
    if summary.timestamp_note:
        lines.append(f"  duration and frame rate: unknown; {summary.timestamp_note}")
    else:
        lines.append(f"  duration: {summary.duration_s:.1f} s of driving, frame rate {summary.frame_rate_hz:.1f} Hz")
    for name, (counts, edges) in summary.histograms.items():
        lines.append(f"  {name}:")
        peak = max(int(counts.max()), 1)
        for count, low, high in zip(counts, edges, edges[1:]):
            bar = "#" * int(round(30 * count / peak))
            lines.append(f"    {low:+.1f}..{high:+.1f} {int(count):6d} {bar}")
    if summary.problems:
        lines.append("  problems found:")
        for problem, count in sorted(summary.problems.items()):
            kind = "note" if problem in NOTES else "problem"
            lines.append(f"    {kind}: {problem} ({count})")
    else:
        lines.append("  problems found: none")
    return "\n".join(lines)


# Problems that ``check_tub(repair=True)`` removes.
REPAIRABLE = frozenset({
    TRUNCATED_LINE, NO_FINAL_NEWLINE, LINE_LENGTHS_WRONG, CATALOG_MANIFEST_MISSING, CATALOG_MISSING, CURRENT_INDEX_WRONG,
})


def needs_repair(tub: Tub) -> list[str]:
    """Return what ``check_tub(repair=True)`` would fix: stale manifests and unusable records not yet deleted."""
    reasons = sorted(problem for problem in tub.problems if problem in REPAIRABLE)
    unusable = set(tub.unusable) - tub.deleted_indexes
    if unusable:
        reasons.append(f"{len(unusable)} records with a missing or damaged image are not marked deleted")
    return reasons


def check_tub(path: Path, repair: bool) -> tuple[Tub, list[str]]:
    """Open a tub, and with ``repair`` rebuild its manifests and mark unusable records deleted.

    Returns the tub as read after any repair and the list of changes made.
    Records whose image is missing or damaged are only marked deleted, so
    ``autodrive tub restore`` brings them back.
    """
    tub = open_tub(path)
    if not repair:
        return tub, []
    if tub.format != FORMAT_V2:
        raise TubError(f"{path}: --repair works on Tub v2 only; run 'autodrive tub convert {path} NEW' first")

    changes = repair_tub(tub.path)
    tub = open_tub(path)
    unusable = set(tub.unusable) - tub.deleted_indexes
    if unusable:
        tub.delete(unusable)
        changes.append(f"marked {len(unusable)} records with a missing or damaged image as deleted")
    return open_tub(path), changes


@dataclass
class ConversionReport:
    """Counts from ``convert_tub``."""

    converted: int
    deleted: int
    skipped: dict[int, str]


def convert_tub(old_path: Path, new_path: Path) -> ConversionReport:
    """Copy an old-format tub into a new Tub v2 folder, keeping labels, timestamps and JPEG bytes.

    Records are numbered from 0 in their old order; records the old tub
    excluded are marked deleted in the new one. Records whose image is
    missing or damaged are skipped and returned in ``skipped``. Raises
    TubError when ``old_path`` is not an old-format tub or ``new_path`` is
    not empty.
    """
    old = open_tub(old_path)
    if old.format != FORMAT_LEGACY:
        raise TubError(f"{old_path}: is already a Tub v2; convert reads the old format (meta.json and record_N.json)")
    if new_path.exists() and any(not is_junk_name(entry.name) for entry in os.scandir(new_path)):
        raise TubError(f"{new_path}: the folder is not empty; give a new folder for the converted tub")

    metadata = {key: value for key, value in old.metadata.items() if key not in ("inputs", "types")}
    image_inputs = {name for name, kind in zip(old.inputs, old.types) if kind in IMAGE_TYPES}
    deleted_new: list[int] = []
    converted = 0
    with TubWriter(new_path, old.inputs, old.types, metadata) as writer:
        for record in old.records(include_deleted=True):
            values: dict[str, Any] = dict(record.values)
            for name in image_inputs:
                values[name] = (old.path / values[name]).read_bytes()
            if record.deleted:
                deleted_new.append(converted)
            writer.write(values, timestamp_ms=record.timestamp_ms, block=True)
            converted += 1
    if writer.count != converted:
        raise TubError(f"{new_path}: only {writer.count} of {converted} records were written ({writer.error})")

    if deleted_new:
        open_tub(new_path).delete(deleted_new)
    return ConversionReport(converted, len(deleted_new), dict(old.unusable))
