"""Camera renderer: the view of a flat track from a pinhole camera on the car.

Speed comes from doing the geometry once. For a flat floor, the point of the
floor that each pixel sees, in the car's frame, depends only on the camera's
mounting and lens, so it is computed when the renderer is built. A frame then
rotates and shifts those points to the car's pose and samples a top-down
picture of the track (one pixel per centimetre, drawn once with OpenCV) with
``cv2.remap``. Pixels that see farther cover more floor, so they sample a
smaller copy of the picture (a mipmap level chosen per pixel, also fixed),
which keeps distant lines from flickering. Pixels above the horizon sample a
360 degree background picture by direction.

Car frame: x forward, y left, z up, origin on the floor under the middle of
the rear axle. Camera frame (OpenCV convention): x right, y down, z forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from autodrive.sim.track import Track

# Colours measured on frames of a real indoor Donkey Car track (RGB).
FLOOR_RGB = (90, 92, 58)
CENTRE_LINE_RGB = (190, 178, 62)
EDGE_LINE_RGB = (226, 232, 218)

MAP_M_PER_PX = 0.01
MAP_MARGIN_M = 3.0
LINE_WIDTH_M = 0.04
DASH_LENGTH_M = 0.2
DASH_GAP_M = 0.15
MIP_LEVELS = 6

PANORAMA_WIDTH_PX = 2048
SAMPLE_ROW_PX = 4096
PANORAMA_TOP_DEG = 80.0


@dataclass(frozen=True)
class CameraParams:
    """Mounting and lens of the simulated camera."""

    width_px: int = 160
    height_px: int = 120
    height_m: float = 0.2       # lens above the floor
    pitch_deg: float = 15.0     # downward tilt; 0 looks at the horizon
    fov_deg: float = 120.0      # horizontal field of view
    forward_m: float = 0.25     # lens ahead of the rear axle


class PinholeCamera:
    """Projection between the car frame and pixel coordinates for CameraParams.

    Pixel coordinates are continuous: pixel (column, row) covers
    column..column+1 and row..row+1, so its centre is at +0.5.
    """

    def __init__(self, params: CameraParams):
        self.params = params
        self.focal_px = (params.width_px / 2) / math.tan(math.radians(params.fov_deg) / 2)
        self.cx = params.width_px / 2
        self.cy = params.height_px / 2

        pitch = math.radians(params.pitch_deg)
        # Camera axes written in the car frame: optical axis tilted down by the pitch.
        self.axis_z = np.array([math.cos(pitch), 0.0, -math.sin(pitch)])
        self.axis_x = np.array([0.0, -1.0, 0.0])
        self.axis_y = np.cross(self.axis_z, self.axis_x)
        self.position = np.array([params.forward_m, 0.0, params.height_m])

    def project(self, points_car: np.ndarray) -> np.ndarray:
        """Return (column, row) pixel coordinates of (N, 3) car-frame points in front of the camera."""
        relative = np.asarray(points_car, dtype=np.float64) - self.position
        depth = relative @ self.axis_z
        column = self.cx + self.focal_px * (relative @ self.axis_x) / depth
        row = self.cy + self.focal_px * (relative @ self.axis_y) / depth
        return np.stack([column, row], axis=-1)

    def pixel_rays(self) -> np.ndarray:
        """Return the (H, W, 3) car-frame direction through each pixel centre (not normalised)."""
        columns = (np.arange(self.params.width_px) + 0.5 - self.cx) / self.focal_px
        rows = (np.arange(self.params.height_px) + 0.5 - self.cy) / self.focal_px
        grid_x, grid_y = np.meshgrid(columns, rows)
        return self.axis_z + grid_x[..., None] * self.axis_x + grid_y[..., None] * self.axis_y


class FloorMap:
    """Top-down picture of the floor with a mipmap, and where it lies in metres."""

    def __init__(self, image: np.ndarray, min_x_m: float, max_y_m: float, m_per_px: float,
                 floor_rgb: tuple[int, int, int] = FLOOR_RGB):
        self.min_x_m = min_x_m
        self.max_y_m = max_y_m
        self.m_per_px = m_per_px
        self.floor_rgb = floor_rgb
        self.levels = [image]
        for _ in range(MIP_LEVELS - 1):
            self.levels.append(cv2.pyrDown(self.levels[-1]))


def draw_track_map(track: Track, seed: int = 0, m_per_px: float = MAP_M_PER_PX) -> FloorMap:
    """Draw the floor, dashed yellow centre line and white edge lines of ``track``."""
    min_x, min_y, max_x, max_y = track.bounds()
    min_x -= MAP_MARGIN_M
    min_y -= MAP_MARGIN_M
    max_x += MAP_MARGIN_M
    max_y += MAP_MARGIN_M
    width = int(math.ceil((max_x - min_x) / m_per_px))
    height = int(math.ceil((max_y - min_y) / m_per_px))
    image = _concrete(height, width, seed)

    shift = 4  # OpenCV fixed-point bits, for sub-pixel line positions
    scale = (1 << shift) / m_per_px

    def to_pixels(points: np.ndarray) -> np.ndarray:
        columns = (points[:, 0] - min_x) * scale
        rows = (max_y - points[:, 1]) * scale
        return np.round(np.stack([columns, rows], axis=1)).astype(np.int32)

    thickness = max(1, int(round(LINE_WIDTH_M / m_per_px)))
    for edge in track.edge_lines():
        cv2.polylines(image, [to_pixels(edge)], True, EDGE_LINE_RGB, thickness, cv2.LINE_AA, shift)

    period = DASH_LENGTH_M + DASH_GAP_M
    dash_count = max(1, int(round(track.length_m / period)))
    period = track.length_m / dash_count
    for dash in range(dash_count):
        start = dash * period
        stations = np.linspace(start, start + DASH_LENGTH_M, 8)
        points = np.array([track.point_at(station) for station in stations])
        cv2.polylines(image, [to_pixels(points)], False, CENTRE_LINE_RGB, thickness, cv2.LINE_AA, shift)

    return FloorMap(image, min_x, max_y, m_per_px)


def _concrete(height: int, width: int, seed: int) -> np.ndarray:
    """Return a floor picture: the base colour with faint large stains and fine grain."""
    rng = np.random.default_rng(seed)
    stains = rng.normal(0.0, 1.0, (max(2, height // 64), max(2, width // 64))).astype(np.float32)
    stains = cv2.resize(stains, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0.0, 1.0, (height, width)).astype(np.float32)
    shade = 1.0 + 0.05 * stains + 0.015 * grain
    floor = np.array(FLOOR_RGB, dtype=np.float32)
    return np.clip(shade[..., None] * floor, 0, 255).astype(np.uint8)


def draw_panorama(seed: int = 0, top_deg: float = PANORAMA_TOP_DEG) -> np.ndarray:
    """Return a 360 degree background: a dim hall with ceiling lights and things along the walls.

    Columns run once around (heading 0 at column 0, turning right to the
    right); rows run from ``top_deg`` above the horizon down to the horizon.
    """
    rng = np.random.default_rng(seed + 7919)
    width = PANORAMA_WIDTH_PX
    height = int(round(width * top_deg / 360.0))
    fraction = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top = np.array((45, 44, 38), np.float32)
    bottom = np.array((95, 98, 88), np.float32)
    image = np.broadcast_to(top + (bottom - top) * fraction ** 3, (height, width, 3)).copy()

    px_per_deg = width / 360.0
    for _ in range(60):
        # Glass walls and pillars of the hall, up to 25 degrees high.
        column = int(rng.integers(0, width))
        tall = int(rng.uniform(8, 25) * px_per_deg)
        wide = int(rng.uniform(2, 15) * px_per_deg)
        colour = rng.uniform(50, 130) + rng.uniform(-8, 8, 3)
        cv2.rectangle(image, (column, height - tall), (column + wide, height - 1), colour.tolist(), -1)
    for _ in range(120):
        # People, tables and barriers along the track, up to 12 degrees high.
        column = int(rng.integers(0, width))
        tall = int(rng.uniform(2, 12) * px_per_deg)
        wide = int(rng.uniform(0.5, 4) * px_per_deg)
        colour = rng.uniform(20, 170) + rng.uniform(-25, 25, 3)
        cv2.rectangle(image, (column, height - tall), (column + wide, height - 1), colour.tolist(), -1)
    for _ in range(160):
        # Ceiling lights between 8 and 60 degrees up.
        column = int(rng.integers(0, width))
        row = height - int(rng.uniform(8, 60) * px_per_deg)
        radius = max(1, int(rng.uniform(0.3, 0.9) * px_per_deg))
        cv2.circle(image, (column, row), radius, (255, 255, 245), -1, cv2.LINE_AA)

    image = cv2.GaussianBlur(image, (0, 0), 1.5)
    return np.clip(image, 0, 255).astype(np.uint8)


class Renderer:
    """Renders RGB uint8 frames of the floor map and background from a car pose."""

    def __init__(self, camera: PinholeCamera, floor: FloorMap, panorama: np.ndarray,
                 top_deg: float = PANORAMA_TOP_DEG, reflections: bool = True, seed: int = 0):
        self.camera = camera
        self.floor = floor
        self.panorama = panorama
        params = camera.params
        self.shape = (params.height_px, params.width_px, 3)

        rays = camera.pixel_rays().reshape(-1, 3)
        height_m = camera.position[2]
        down = -rays[:, 2]
        on_floor = down > 1e-6
        floor_index = np.flatnonzero(on_floor)
        sky_index = np.flatnonzero(~on_floor)

        # Floor pixels: where each ray meets the floor, in the car frame.
        reach = height_m / down[floor_index]
        ground = camera.position[:2] + reach[:, None] * rays[floor_index, :2]
        length = reach * np.linalg.norm(rays[floor_index], axis=1)

        # Mipmap level per pixel from the size of its footprint on the floor.
        # Across the ray the footprint is distance / focal length, and along it
        # that divided by the sine of the grazing angle. The level uses their geometric mean.
        grazing = down[floor_index] / np.linalg.norm(rays[floor_index], axis=1)
        footprint_m = length / camera.focal_px / np.sqrt(grazing)
        level = np.clip(np.round(np.log2(np.maximum(footprint_m / floor.m_per_px, 1.0))), 0, MIP_LEVELS - 1)
        order = np.argsort(level, kind="stable")
        floor_index, ground, length = floor_index[order], ground[order], length[order]
        level = level[order].astype(int)

        # cv2.remap needs images narrower than 32767 px, so each group of
        # samples (one per mipmap level, plus the sky) is laid out as rows of
        # at most SAMPLE_ROW_PX, the last row padded with copies of its last sample.
        floor_pick, self._floor_blocks = _pack_groups([np.flatnonzero(level == number) for number in range(MIP_LEVELS)])
        sky_pick, sky_blocks = _pack_groups([np.arange(len(sky_index))])
        self._ground_x = ground[floor_pick, 0].astype(np.float32)
        self._ground_y = ground[floor_pick, 1].astype(np.float32)
        floor_padded = len(floor_pick)
        self._sky_offset = floor_padded
        self._sky_blocks = [(start + floor_padded, rows, width) for _, start, rows, width in sky_blocks]

        # Sky pixels: direction of each ray, as panorama coordinates before the heading.
        sky_rays = rays[sky_index[sky_pick]] if len(sky_index) else rays[:0]
        azimuth = np.arctan2(sky_rays[:, 1], sky_rays[:, 0])
        elevation = np.degrees(np.arctan2(sky_rays[:, 2], np.hypot(sky_rays[:, 0], sky_rays[:, 1])))
        pano_height, pano_width = panorama.shape[:2]
        self._sky_column = (-azimuth / math.tau * pano_width).astype(np.float32)
        self._sky_row = np.clip((top_deg - elevation) / top_deg * pano_height - 0.5, 0, pano_height - 1).astype(np.float32)
        self._pano_width = pano_width

        # Floor shading: the far floor reflects the hall's lights, so it looks
        # brighter than the floor just in front of the car (up to +30 %).
        # Vertical streaks below the horizon stand for reflections of ceiling
        # lights, which stay put in the picture as the car moves.
        gain = np.ones(len(rays))
        gain[floor_index] = 1.0 + 0.3 * (1.0 - np.exp(-length / 2.5))
        gain = gain.reshape(params.height_px, params.width_px)
        if reflections:
            gain *= _reflections(camera, floor_index, np.random.default_rng(seed))
        shade = np.clip(np.round(128 * gain), 0, 255).astype(np.uint8)
        self._shade = np.repeat(shade[..., None], 3, axis=2)

        # Samples are written group by group, then moved to their pixels in one
        # gather. A padding copy is as good a source as the sample it copies.
        self._samples = np.empty((floor_padded + len(sky_pick), 3), np.uint8)
        self._floor_count = len(floor_index)
        pixel_to_sample = np.empty(len(rays), np.intp)
        pixel_to_sample[floor_index[floor_pick]] = np.arange(floor_padded)
        if len(sky_index):
            pixel_to_sample[sky_index[sky_pick]] = floor_padded + np.arange(len(sky_pick))
        self._pixel_to_sample = pixel_to_sample

    @property
    def floor_pixel_count(self) -> int:
        return self._floor_count

    def render(self, x_m: float, y_m: float, heading_rad: float) -> np.ndarray:
        """Return the (H, W, 3) RGB uint8 frame seen from the car pose."""
        floor = self.floor
        cos_h, sin_h = math.cos(heading_rad), math.sin(heading_rad)
        scale = 1.0 / floor.m_per_px

        # Base-level map coordinates of every floor pixel, in map pixels.
        gx, gy = self._ground_x, self._ground_y
        map_column = (gx * (cos_h * scale) - gy * (sin_h * scale)) + (x_m - floor.min_x_m) * scale
        map_row = (gx * (-sin_h * scale) - gy * (cos_h * scale)) + (floor.max_y_m - y_m) * scale

        # cv2.pyrDown centres pixel i of a level on pixel 2i of the level
        # below, so pixel i of level k is centred on base pixel i * 2**k.
        samples = self._samples
        for number, start, rows, width in self._floor_blocks:
            part = slice(start, start + rows * width)
            factor = 1.0 / (1 << number)
            columns = ((map_column[part] - 0.5) * factor).reshape(rows, width)
            map_rows = ((map_row[part] - 0.5) * factor).reshape(rows, width)
            out = samples[part].reshape(rows, width, 3)
            cv2.remap(floor.levels[number], columns, map_rows, cv2.INTER_LINEAR, dst=out,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=floor.floor_rgb)

        shift = np.float32(-heading_rad / math.tau * self._pano_width)
        for start, rows, width in self._sky_blocks:
            part = slice(start - self._sky_offset, start - self._sky_offset + rows * width)
            columns = np.mod(self._sky_column[part] + shift, self._pano_width).reshape(rows, width)
            out = samples[start:start + rows * width].reshape(rows, width, 3)
            cv2.remap(self.panorama, columns, self._sky_row[part].reshape(rows, width), cv2.INTER_LINEAR,
                      dst=out, borderMode=cv2.BORDER_WRAP)

        frame = samples.take(self._pixel_to_sample, axis=0).reshape(self.shape)
        return cv2.multiply(frame, self._shade, scale=1.0 / 128)


def _pack_groups(groups: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Lay out groups of sample positions as blocks of rows at most SAMPLE_ROW_PX wide.

    Returns the positions in block order, with the last row of each block
    padded by repeating its last position, and (group, start, rows, width)
    for each non-empty group.
    """
    picks = []
    blocks = []
    start = 0
    for number, positions in enumerate(groups):
        count = len(positions)
        if count == 0:
            continue
        width = min(count, SAMPLE_ROW_PX)
        rows = -(-count // width)
        padding = rows * width - count
        picks.append(np.concatenate([positions, np.full(padding, positions[-1])]))
        blocks.append((number, start, rows, width))
        start += rows * width
    pick = np.concatenate(picks).astype(np.intp) if picks else np.zeros(0, np.intp)
    return pick, blocks


def _reflections(camera: PinholeCamera, floor_index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return a (H, W) brightness gain with a few soft vertical streaks fading down from the horizon."""
    params = camera.params
    height, width = params.height_px, params.width_px
    horizon_row = camera.cy - camera.focal_px * math.tan(math.radians(params.pitch_deg))
    rows = np.arange(height)[:, None] + 0.5
    columns = np.arange(width)[None, :] + 0.5
    gain = np.ones((height, width))
    below = np.clip(rows - horizon_row, 0, None)
    for _ in range(6):
        centre = rng.uniform(0, width)
        spread = rng.uniform(0.01, 0.04) * width
        strength = rng.uniform(0.1, 0.35)
        fade = np.exp(-below / (0.25 * height))
        gain += strength * np.exp(-0.5 * ((columns - centre) / spread) ** 2) * fade
    on_floor = np.zeros(height * width, bool)
    on_floor[floor_index] = True
    return np.where(on_floor.reshape(height, width), gain, 1.0)
