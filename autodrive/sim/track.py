"""Closed tracks: a centre line sampled every few centimetres, and queries on it.

Coordinates are metres on the floor plane, x east and y north. A track runs
counter-clockwise or clockwise; the car starts at the first centre-line point,
heading along the line. The lane is ``lane_width_m`` wide between the two
white edge lines, centred on the dashed yellow centre line.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from autodrive.errors import ConfigError

log = logging.getLogger(__name__)

# Spacing of the sampled centre line. 2 cm keeps the polyline within a
# fraction of a millimetre of the arcs while a 40 m track stays near 2,000 points.
SAMPLE_SPACING_M = 0.02


class TrackError(ConfigError):
    """A track file or track name is invalid; the message names it and the fix."""


@dataclass(frozen=True)
class TrackPoint:
    """Position of a floor point relative to the centre line."""

    distance_m: float   # along the centre line from the start, 0..length_m
    cte_m: float        # signed cross-track error, positive right of the centre line
    heading_rad: float  # direction of the centre line at that point
    index: int          # index of the centre-line segment nearest to the position


class Track:
    """A closed centre line, sampled at even spacing, with its lane width."""

    def __init__(self, points: np.ndarray, lane_width_m: float, name: str = "track"):
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
            raise TrackError(f"track {name}: needs at least 3 centre-line points as (x, y) pairs in metres")
        self.name = name
        self.lane_width_m = float(lane_width_m)
        self.points = _resample_closed(points, SAMPLE_SPACING_M)

        following = np.roll(self.points, -1, axis=0)
        self.segments = following - self.points
        self.segment_lengths = np.hypot(self.segments[:, 0], self.segments[:, 1])
        self.distances = np.concatenate([[0.0], np.cumsum(self.segment_lengths)[:-1]])
        self.length_m = float(self.segment_lengths.sum())
        self.headings = np.arctan2(self.segments[:, 1], self.segments[:, 0])
        self.tangents = self.segments / self.segment_lengths[:, None]
        self.left_normals = np.stack([-self.tangents[:, 1], self.tangents[:, 0]], axis=1)

    def __repr__(self) -> str:
        return f"Track({self.name!r}, length {self.length_m:.2f} m, lane {self.lane_width_m:.2f} m)"

    @property
    def start_pose(self) -> tuple[float, float, float]:
        """Return the start position and heading: x_m, y_m, heading_rad."""
        return float(self.points[0, 0]), float(self.points[0, 1]), float(self.headings[0])

    def locate(self, x_m: float, y_m: float) -> TrackPoint:
        """Return where the floor point (x_m, y_m) lies relative to the nearest part of the centre line."""
        offset_x = x_m - self.points[:, 0]
        offset_y = y_m - self.points[:, 1]
        along = (offset_x * self.segments[:, 0] + offset_y * self.segments[:, 1]) / self.segment_lengths**2
        along = np.clip(along, 0.0, 1.0)
        gap_x = offset_x - along * self.segments[:, 0]
        gap_y = offset_y - along * self.segments[:, 1]
        index = int(np.argmin(gap_x * gap_x + gap_y * gap_y))

        left = gap_x[index] * self.left_normals[index, 0] + gap_y[index] * self.left_normals[index, 1]
        distance = self.distances[index] + along[index] * self.segment_lengths[index]
        return TrackPoint(float(distance), float(-left), float(self.headings[index]), index)

    def point_at(self, distance_m: float, offset_m: float = 0.0) -> tuple[float, float]:
        """Return the floor point ``distance_m`` along the centre line, ``offset_m`` to its right."""
        distance = distance_m % self.length_m
        index = int(np.searchsorted(self.distances, distance, side="right")) - 1
        along = distance - self.distances[index]
        x, y = self.points[index] + self.tangents[index] * along
        x -= self.left_normals[index, 0] * offset_m
        y -= self.left_normals[index, 1] * offset_m
        return float(x), float(y)

    def curvature_at(self, distance_m: float, span_m: float = 0.3) -> float:
        """Return the signed curvature (1/m, positive turning left) averaged over ``span_m`` ahead."""
        start = self._index_at(distance_m)
        end = self._index_at(distance_m + span_m)
        turn = math.remainder(self.headings[end] - self.headings[start], math.tau)
        return turn / span_m

    def edge_lines(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the left and right white edge lines as (N, 2) arrays of points."""
        half = self.lane_width_m / 2
        return self.points + self.left_normals * half, self.points - self.left_normals * half

    def bounds(self) -> tuple[float, float, float, float]:
        """Return min_x, min_y, max_x, max_y of the lane, edges included, in metres."""
        left, right = self.edge_lines()
        both = np.concatenate([left, right])
        return (float(both[:, 0].min()), float(both[:, 1].min()), float(both[:, 0].max()), float(both[:, 1].max()))

    def _index_at(self, distance_m: float) -> int:
        return int(np.searchsorted(self.distances, distance_m % self.length_m, side="right")) - 1


# -- building tracks -----------------------------------------------------------


def _resample_closed(points: np.ndarray, spacing_m: float) -> np.ndarray:
    """Return points at even spacing along the closed polyline through ``points``."""
    closed = np.vstack([points, points[:1]])
    lengths = np.hypot(*np.diff(closed, axis=0).T)
    if np.any(lengths <= 1e-9):
        raise TrackError("track has two consecutive centre-line points at the same place; remove one of them")
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    count = max(3, int(round(cumulative[-1] / spacing_m)))
    stations = np.linspace(0.0, cumulative[-1], count, endpoint=False)
    x = np.interp(stations, cumulative, closed[:, 0])
    y = np.interp(stations, cumulative, closed[:, 1])
    return np.stack([x, y], axis=1)


def trace_segments(segments: Sequence[tuple[float, float]], spacing_m: float = SAMPLE_SPACING_M) -> np.ndarray:
    """Trace a centre line from (length_m, turn_deg) pieces, starting at the origin heading east.

    A piece with turn 0 is a straight; any other is an arc turning left
    (positive) or right (negative) by ``turn_deg`` over ``length_m``.
    """
    x, y, heading = 0.0, 0.0, 0.0
    points = [(x, y)]
    for length, turn_deg in segments:
        steps = max(1, int(math.ceil(length / spacing_m)))
        step_length = length / steps
        step_turn = math.radians(turn_deg) / steps
        for _ in range(steps):
            if step_turn == 0.0:
                x += step_length * math.cos(heading)
                y += step_length * math.sin(heading)
            else:
                radius = step_length / step_turn
                x += radius * (math.sin(heading + step_turn) - math.sin(heading))
                y -= radius * (math.cos(heading + step_turn) - math.cos(heading))
            heading += step_turn
            points.append((x, y))

    closure_m = math.hypot(points[-1][0], points[-1][1])
    if closure_m > 1e-6:
        raise TrackError(f"traced track does not close: its end is {closure_m:.4f} m from its start")
    return np.array(points[:-1])


def _arc(radius_m: float, turn_deg: float) -> tuple[float, float]:
    return radius_m * math.radians(abs(turn_deg)), turn_deg


def _s_bend_shift(radius_m: float, turn_deg: float) -> tuple[float, float]:
    """Return forward and sideways travel of a left-then-right S-bend of two equal arcs."""
    angle = math.radians(turn_deg)
    return 2 * radius_m * math.sin(angle), 2 * radius_m * (1 - math.cos(angle))


def _builtin_pieces(name: str) -> list[tuple[float, float]] | None:
    if name == "oval":
        # 4 m straights joined by half circles of 1.5 m radius: 17.4 m a lap.
        return [(4.0, 0.0), _arc(1.5, 180.0), (4.0, 0.0), _arc(1.5, 180.0)]

    if name == "bends":
        # Left bends of 1.0, 0.8 and 1.2 m radius and one right bend of 0.8 m.
        return [
            (3.0, 0.0), _arc(1.0, 90.0), (1.0, 0.0), _arc(1.0, 90.0),
            _arc(0.8, -90.0), _arc(0.8, 90.0),
            (1.4, 0.0), _arc(1.2, 90.0), (2.2, 0.0), _arc(1.2, 90.0),
        ]

    if name == "long":
        # Two long straights, an S-bend in the first, half circles at both ends.
        forward, sideways = _s_bend_shift(1.5, 45.0)
        far_radius = 2.0
        near_radius = (sideways + 2 * far_radius) / 2
        return [
            (6.0, 0.0), _arc(1.5, 45.0), _arc(1.5, -45.0), (6.0, 0.0),
            _arc(far_radius, 180.0), (12.0 + forward, 0.0), _arc(near_radius, 180.0),
        ]
    return None


BUILTIN_TRACKS = ("oval", "bends", "long")


def builtin_track(name: str, lane_width_m: float) -> Track:
    """Return the built-in track ``name`` (one of BUILTIN_TRACKS)."""
    pieces = _builtin_pieces(name)
    if pieces is None:
        raise TrackError(f"sim.track = {name!r} is not a built-in track ({', '.join(BUILTIN_TRACKS)}) "
                         "or a .yaml file of centre-line points")
    return Track(trace_segments(pieces), lane_width_m, name)


def load_track_file(path: Path, lane_width_m: float) -> Track:
    """Load a track from a YAML list of centre-line points ``[x, y]`` in metres.

    The file is either a list of points or a mapping with a ``points`` list.
    The points are joined into a smooth closed curve (a Catmull-Rom spline
    through every point), so a few points per bend are enough.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TrackError(f"sim.track: cannot read track file {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise TrackError(f"sim.track: track file {path} is not valid YAML: {error}") from None

    points = _parse_points(data, path)
    return Track(catmull_rom_closed(points), lane_width_m, path.stem)


def _parse_points(data: Any, path: Path) -> np.ndarray:
    example = "for example:\n- [0, 0]\n- [4, 0]\n- [4, 3]\n- [0, 3]"
    if isinstance(data, dict):
        data = data.get("points")
    if not isinstance(data, list) or len(data) < 3:
        raise TrackError(f"sim.track: track file {path} must contain a list of at least 3 [x, y] points "
                         f"in metres, {example}")

    points = []
    for number, item in enumerate(data, start=1):
        valid = (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in item)
            and all(math.isfinite(value) for value in item)
        )
        if not valid:
            raise TrackError(f"sim.track: point {number} of track file {path} is {item!r}; "
                             "each point must be a pair of finite numbers [x, y] in metres")
        points.append((float(item[0]), float(item[1])))

    array = np.array(points)
    if np.allclose(array[0], array[-1]):
        array = array[:-1]
    gaps = np.hypot(*np.diff(np.vstack([array, array[:1]]), axis=0).T)
    if np.any(gaps < 1e-6):
        number = int(np.argmax(gaps < 1e-6)) + 1
        raise TrackError(f"sim.track: points {number} and {number % len(array) + 1} of track file {path} "
                         "are at the same place; remove one of them")
    if len(array) < 3:
        raise TrackError(f"sim.track: track file {path} needs at least 3 distinct points")
    return array


def catmull_rom_closed(points: np.ndarray, spacing_m: float = SAMPLE_SPACING_M) -> np.ndarray:
    """Return a closed centripetal Catmull-Rom spline through ``points``, sampled about every ``spacing_m``."""
    count = len(points)
    curve = []
    for index in range(count):
        p0, p1, p2, p3 = (points[(index + shift) % count] for shift in (-1, 0, 1, 2))
        t0 = 0.0
        t1 = t0 + np.linalg.norm(p1 - p0) ** 0.5
        t2 = t1 + np.linalg.norm(p2 - p1) ** 0.5
        t3 = t2 + np.linalg.norm(p3 - p2) ** 0.5
        steps = max(2, int(math.ceil(np.linalg.norm(p2 - p1) / spacing_m)))
        t = np.linspace(t1, t2, steps, endpoint=False)[:, None]

        a1 = (t1 - t) / (t1 - t0) * p0 + (t - t0) / (t1 - t0) * p1
        a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
        a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
        b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
        b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
        curve.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    return np.concatenate(curve)


def make_track(name_or_path: str, lane_width_m: float, base: Path | None = None) -> Track:
    """Return a built-in track by name, or load a track file (resolved against ``base``)."""
    if _builtin_pieces(name_or_path) is not None:
        return builtin_track(name_or_path, lane_width_m)
    if not name_or_path.lower().endswith((".yaml", ".yml")):
        raise TrackError(f"sim.track = {name_or_path!r} is not a built-in track ({', '.join(BUILTIN_TRACKS)}) "
                         "or a .yaml file of centre-line points")
    path = Path(name_or_path).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise TrackError(f"sim.track: track file {path} not found; give a path relative to the car folder "
                         f"or one of the built-in tracks ({', '.join(BUILTIN_TRACKS)})")
    return load_track_file(path, lane_width_m)
