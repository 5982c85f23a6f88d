"""Records, the tub error, and the checks every tub format shares.

The problem descriptions below are the keys of ``Tub.problems``; callers and
tests can compare against these constants instead of repeating the text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodrive.errors import AutodriveError


class TubError(AutodriveError, ValueError):
    """A folder is not a readable tub, or a tub operation failed; the message names the path."""


# Problems found while reading. Each is counted once per occurrence and logged once per tub.
TRUNCATED_LINE = "truncated last catalog line (a write was cut off)"
NO_FINAL_NEWLINE = "last catalog line has no newline"
UNPARSABLE_LINE = "unparsable catalog line"
BLANK_LINE = "blank catalog line"
NOT_A_RECORD = "catalog line is not a JSON object"
LINE_LENGTHS_WRONG = "catalog_manifest line_lengths disagree with the catalog"
CATALOG_MANIFEST_MISSING = "catalog_manifest missing or unreadable"
EMPTY_CATALOG = "empty catalog file"
CATALOG_MISSING = "catalog file listed in manifest.json is missing"
CURRENT_INDEX_WRONG = "manifest.json current_index disagrees with the catalogs"
IMAGE_MISSING = "image file missing"
IMAGE_INVALID = "image file is not a valid JPEG"
IMAGE_NAME_MISSING = "record has no image file name"
NULL_VALUE = "null value"
NON_FINITE_VALUE = "NaN or infinite value read as null"
WRONG_TYPE = "value of the wrong type read as null"
UNUSED_INPUT = "input declared in the manifest but in no record"
MISSING_INPUT = "record lacks a declared input"
NO_SESSION_ID = "record without _session_id"
NO_INDEX = "record without _index (position in the catalog used)"
DUPLICATE_INDEX = "duplicate _index (first record kept)"
OLD_METADATA = "manifest line 3 holds old-format metadata (inputs, types, start)"
JUNK_FILE = "ignored macOS metadata file (._* or .DS_Store)"
UNREADABLE_RECORD_FILE = "unreadable record_N.json file"

# Problems that describe how a tub was made rather than damage to it; logged at DEBUG.
NOTES = frozenset({NO_SESSION_ID, OLD_METADATA, JUNK_FILE, UNUSED_INPUT})

# Types whose value in a record is the name of an image file.
IMAGE_TYPES = ("image_array", "image", "gray16_array")

# Keys that the tub itself adds to every record.
INDEX_KEY = "_index"
TIMESTAMP_KEY = "_timestamp_ms"
SESSION_KEY = "_session_id"
PRIVATE_KEYS = (INDEX_KEY, TIMESTAMP_KEY, SESSION_KEY)

_JPEG_START = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
_JPEG_TAIL_BYTES = 64


@dataclass(slots=True)
class Record:
    """One recorded frame: its index, channel values and where its image is.

    ``values`` maps channel names to values, with floats as ``float`` and
    NaN, infinity or null as ``None``. An image channel's value is the image
    file name as stored in the tub. ``timestamp_ms`` is wall-clock time in
    milliseconds since the Unix epoch, when the tub stored one.
    """

    index: int
    values: dict[str, Any]
    image_path: Path | None = None
    timestamp_ms: int | None = None
    session_id: str | None = None
    deleted: bool = False


def is_junk_name(name: str) -> bool:
    """Return True for macOS metadata files that copies to and from a Mac leave behind."""
    return name.startswith("._") or name == ".DS_Store"


def jpeg_looks_complete(path: Path) -> bool | None:
    """Check a JPEG's start and end markers without decoding it.

    Returns None when the file does not exist, False when it is empty, lacks
    the start marker or was cut off before its end marker, True otherwise.
    Trailing zero bytes after the end marker, which some cameras add, are
    accepted.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(len(_JPEG_START))
            size = file.seek(0, 2)
            file.seek(max(0, size - _JPEG_TAIL_BYTES))
            tail = file.read()
    except FileNotFoundError:
        return None
    except OSError:
        return False
    if head != _JPEG_START:
        return False
    return tail.rstrip(b"\x00").endswith(_JPEG_END)


def normalize_value(value: Any, kind: str) -> tuple[Any, str | None]:
    """Convert one stored value to the Python type its declared ``kind`` calls for.

    Returns the value and a problem description, or None when the value is
    fine. A float channel turns integers into floats, -0.0 into 0.0, and
    NaN, infinity, null or a non-number into None.
    """
    if kind == "float":
        if value is None:
            return None, NULL_VALUE
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, WRONG_TYPE
        number = float(value)
        if not math.isfinite(number):
            return None, NON_FINITE_VALUE
        return number + 0.0, None

    if kind == "int":
        if value is None:
            return None, NULL_VALUE
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        if isinstance(value, bool) or not isinstance(value, int):
            return None, WRONG_TYPE
        return value, None

    if value is None:
        return None, NULL_VALUE
    if isinstance(value, float) and not math.isfinite(value):
        return None, NON_FINITE_VALUE
    return value, None
