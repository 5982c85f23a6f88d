"""Training options shared by the TensorFlow-free planner and the TensorFlow pipeline."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Augmentations:
    """Switches of the training augmentations, all off by default."""

    brightness: bool = False
    blur: bool = False
    flip: bool = False
    shadow: bool = False

    @property
    def any(self) -> bool:
        return self.brightness or self.blur or self.flip or self.shadow

    def names(self) -> list[str]:
        return [name for name in ("brightness", "blur", "flip", "shadow") if getattr(self, name)]
