"""Tubs: Donkey Car's recording format, read (Tub v2 and the old format) and written (Tub v2).

``open_tub(path)`` returns a ``Tub`` whose ``records()`` yield ``Record``
objects in index order. ``TubWriter`` appends a new session to a Tub v2,
and its ``write`` never waits for the disk.
"""

from autodrive.tub.reader import FORMAT_LEGACY, FORMAT_V2, Tub, open_tub
from autodrive.tub.record import Record, TubError
from autodrive.tub.v2 import repair_tub
from autodrive.tub.writer import TubWriter  # noqa: F401

__all__ = ["FORMAT_LEGACY", "FORMAT_V2", "Record", "Tub", "TubError", "TubWriter", "open_tub", "repair_tub"]
