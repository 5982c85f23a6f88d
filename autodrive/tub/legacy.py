"""The old Donkey Car tub format, read-only apart from its deletion list.

Layout of an old tub folder::

    meta.json                {"inputs": [...], "types": [...], "start": epoch seconds, ...}
    record_N.json            one JSON object per record, with "milliseconds"
                             since "start" and image file names as values
    N_cam-image_array_.jpg   images, in the tub folder itself
    exclude.json             optional list of deleted record numbers

The format has no index file, so its records are found by listing the folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodrive.tub.record import (
    INDEX_KEY,
    JUNK_FILE,
    TIMESTAMP_KEY,
    UNREADABLE_RECORD_FILE,
    is_junk_name,
)
from autodrive.tub.v2 import write_atomically

log = logging.getLogger(__name__)

META_NAME = "meta.json"
EXCLUDE_NAME = "exclude.json"
MILLISECONDS_KEY = "milliseconds"
_RECORD_NAME = re.compile(r"^record_(\d+)\.json$")


@dataclass
class LegacyContents:
    """Everything read from an old-format tub."""

    inputs: list[str]
    types: list[str]
    metadata: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    excluded: set[int] = field(default_factory=set)
    problems: Counter = field(default_factory=Counter)


def looks_like_legacy(tub_path: Path) -> bool:
    """Return True when the folder contains meta.json or at least one record_N.json."""
    if (tub_path / META_NAME).is_file():
        return True
    with os.scandir(tub_path) as entries:
        return any(_RECORD_NAME.match(entry.name) for entry in entries)


def read_legacy(tub_path: Path) -> LegacyContents:
    """Read meta.json, exclude.json and every record_N.json.

    Each record gets ``_index`` from its file name and ``_timestamp_ms``
    from meta.json's ``start`` plus its ``milliseconds``, so that the rest of
    the reader treats it like a Tub v2 record.
    """
    metadata = _read_json(tub_path / META_NAME, default={})
    if not isinstance(metadata, dict):
        metadata = {}
    problems: Counter = Counter()
    numbered: list[tuple[int, Path]] = []
    with os.scandir(tub_path) as entries:
        for entry in entries:
            if is_junk_name(entry.name):
                problems[JUNK_FILE] += 1
                continue
            match = _RECORD_NAME.match(entry.name)
            if match:
                numbered.append((int(match.group(1)), Path(entry.path)))
    numbered.sort()

    start_s = metadata.get("start")
    records = []
    for number, path in numbered:
        record = _read_json(path, default=None)
        if not isinstance(record, dict):
            problems[UNREADABLE_RECORD_FILE] += 1
            continue
        record[INDEX_KEY] = number
        milliseconds = record.pop(MILLISECONDS_KEY, None)
        if isinstance(start_s, (int, float)) and isinstance(milliseconds, (int, float)):
            record[TIMESTAMP_KEY] = int(round(start_s * 1000 + milliseconds))
        records.append(record)

    inputs = metadata.get("inputs")
    types = metadata.get("types")
    if not isinstance(inputs, list) or not isinstance(types, list) or len(inputs) != len(types):
        inputs, types = _guess_inputs(records)
        log.info("%s: %s has no inputs and types, guessed %s from the records", tub_path, META_NAME, inputs)

    excluded = _read_json(tub_path / EXCLUDE_NAME, default=[])
    excluded_set = {int(index) for index in excluded if isinstance(index, (int, float))} if isinstance(excluded, list) else set()
    return LegacyContents([str(name) for name in inputs], [str(kind) for kind in types],
                          metadata, records, excluded_set, problems)


def write_excluded(tub_path: Path, excluded: set[int]) -> None:
    """Store the deleted record numbers in exclude.json, the old format's deletion list."""
    write_atomically(tub_path / EXCLUDE_NAME, json.dumps(sorted(excluded)) + "\n")


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as error:
        log.debug("%s: unreadable JSON: %s", path, error)
        return default


def _guess_inputs(records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    kinds: dict[str, str] = {}
    for record in records:
        for name, value in record.items():
            if name.startswith("_") or name in kinds:
                continue
            if isinstance(value, str) and value.lower().endswith((".jpg", ".jpeg")):
                kinds[name] = "image_array"
            elif isinstance(value, bool):
                kinds[name] = "boolean"
            elif isinstance(value, (int, float)):
                kinds[name] = "float"
            else:
                kinds[name] = "str"
    return list(kinds), list(kinds.values())
