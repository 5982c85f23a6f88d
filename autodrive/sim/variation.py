"""Random lighting, noise and blur on rendered frames, so pilots trained on them cope with real cameras."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Frames between new lighting targets. The lighting moves 5 % of the way to
# its target each frame, so a change takes about 3 s at 20 Hz.
LIGHTING_HOLD_FRAMES = 100
LIGHTING_STEP = 0.05
NOISE_BANK_SIZE = 16


@dataclass(frozen=True)
class VariationParams:
    """How much the frames vary; zeros give the clean rendering."""

    lighting: float = 0.0    # largest brightness change, as a fraction
    noise_std: float = 0.0   # per-pixel noise, on the 0..255 scale
    blur_max_px: int = 0     # largest Gaussian blur radius


class FrameVariation:
    """Applies drifting lighting, per-pixel noise and random blur, drawn from ``rng``."""

    def __init__(self, params: VariationParams, shape: tuple[int, int, int], rng: np.random.Generator):
        self.params = params
        self.rng = rng
        self.frames = 0
        self.gain = np.ones(3)
        self.target_gain = np.ones(3)
        self._levels = np.arange(256, dtype=np.float64)

        # Noise is drawn once into a bank of frames and picked at random per
        # frame: drawing 57,600 normal values every frame would cost more than
        # rendering it. Positive and negative parts are kept apart so that
        # cv2.add and cv2.subtract apply them with uint8 saturation.
        self._noise_up: list[np.ndarray] = []
        self._noise_down: list[np.ndarray] = []
        if params.noise_std > 0:
            for _ in range(NOISE_BANK_SIZE):
                noise = rng.normal(0.0, params.noise_std, shape)
                self._noise_up.append(np.clip(noise, 0, 255).astype(np.uint8))
                self._noise_down.append(np.clip(-noise, 0, 255).astype(np.uint8))

    @property
    def active(self) -> bool:
        params = self.params
        return params.lighting > 0 or params.noise_std > 0 or params.blur_max_px > 0

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Return ``frame`` with this frame's lighting, noise and blur applied."""
        params = self.params
        rng = self.rng
        self.frames += 1

        if params.lighting > 0:
            if self.frames % LIGHTING_HOLD_FRAMES == 1:
                brightness = rng.uniform(1.0 - params.lighting, 1.0 + params.lighting)
                tint = rng.uniform(-params.lighting / 3, params.lighting / 3, 3)
                self.target_gain = brightness * (1.0 + tint)
            self.gain += (self.target_gain - self.gain) * LIGHTING_STEP
            table = np.clip(self._levels[:, None] * self.gain[None, :], 0, 255).astype(np.uint8)
            frame = cv2.LUT(frame, table.reshape(256, 1, 3))

        if self._noise_up:
            pick = int(rng.integers(NOISE_BANK_SIZE))
            frame = cv2.subtract(cv2.add(frame, self._noise_up[pick]), self._noise_down[pick])

        if params.blur_max_px > 0:
            radius = int(rng.integers(0, params.blur_max_px + 1))
            if radius:
                frame = cv2.GaussianBlur(frame, (2 * radius + 1, 2 * radius + 1), 0)
        return frame
