"""Reading tubs: ``open_tub`` and the ``Tub`` it returns, for Tub v2 and the old format.

A tub is read once, when it is opened: every catalog line is parsed, every
image file is checked for its JPEG start and end markers, and problems are
counted in ``Tub.problems`` and logged once per tub. Records with a missing
or damaged image are left out of ``records()`` and listed in
``Tub.unusable``; every other record is kept.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from autodrive.tub import legacy, v2
from autodrive.tub.record import (
    CATALOG_MISSING,
    CURRENT_INDEX_WRONG,
    DUPLICATE_INDEX,
    EMPTY_CATALOG,
    IMAGE_INVALID,
    IMAGE_MISSING,
    IMAGE_NAME_MISSING,
    IMAGE_TYPES,
    INDEX_KEY,
    JUNK_FILE,
    MISSING_INPUT,
    NO_INDEX,
    NO_SESSION_ID,
    NOTES,
    OLD_METADATA,
    PRIVATE_KEYS,
    SESSION_KEY,
    TIMESTAMP_KEY,
    UNUSED_INPUT,
    Record,
    TubError,
    is_junk_name,
    jpeg_looks_complete,
    normalize_value,
)

log = logging.getLogger(__name__)

FORMAT_V2 = "v2"
FORMAT_LEGACY = "legacy"


class Tub:
    """A tub opened for reading; see ``open_tub``.

    ``format`` is "v2" or "legacy". ``inputs`` and ``types`` are the
    declared channels and their types, ``metadata`` the user metadata, and
    ``sessions`` the session ids in the order they were recorded.
    ``problems`` maps a problem description to its count, and ``unusable``
    maps the index of each record left out to the reason.
    """

    def __init__(self, path: Path, format: str, inputs: list[str], types: list[str],
                 metadata: dict[str, Any], sessions: list[str], records: list[Record],
                 deleted_indexes: set[int], problems: Counter, unusable: dict[int, str]):
        self.path = path
        self.format = format
        self.inputs = inputs
        self.types = types
        self.metadata = metadata
        self.sessions = sessions
        self.deleted_indexes = deleted_indexes
        self.problems = problems
        self.unusable = unusable
        self._records = records
        self._by_index = {record.index: record for record in records}
        self._mark_deleted()

    def __len__(self) -> int:
        return sum(1 for record in self._records if not record.deleted)

    def __repr__(self) -> str:
        return f"Tub({str(self.path)!r}, format={self.format!r}, records={len(self)})"

    @property
    def image_input(self) -> str | None:
        """The first declared input of an image type (usually ``cam/image_array``), or None."""
        for name, kind in zip(self.inputs, self.types):
            if kind in IMAGE_TYPES:
                return name
        return None

    @property
    def types_by_input(self) -> dict[str, str]:
        """Declared type of each input."""
        return dict(zip(self.inputs, self.types))

    def records(self, include_deleted: bool = False) -> Iterator[Record]:
        """Iterate the usable records in index order, with deleted ones only when asked."""
        for record in self._records:
            if include_deleted or not record.deleted:
                yield record

    def record(self, index: int) -> Record:
        """Return the usable record with ``index``, deleted or not; raise KeyError if there is none."""
        return self._by_index[index]

    @property
    def indexes(self) -> list[int]:
        """Indexes of every usable record, deleted ones included, in order."""
        return [record.index for record in self._records]

    def read_image_bytes(self, record: Record) -> bytes:
        """Return the stored JPEG bytes of a record's image, or raise TubError."""
        if record.image_path is None:
            raise TubError(f"{self.path}: record {record.index} has no image")
        try:
            return record.image_path.read_bytes()
        except OSError as error:
            raise TubError(f"{record.image_path}: failed to read the image of record {record.index}: {error.strerror}") from None

    def load_image(self, record: Record) -> np.ndarray:
        """Decode a record's image into an RGB uint8 array of shape H x W x 3, or raise TubError."""
        import cv2

        data = np.frombuffer(self.read_image_bytes(record), dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise TubError(f"{record.image_path}: the image of record {record.index} is not a valid JPEG")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def delete(self, indexes: Iterable[int]) -> set[int]:
        """Mark records as deleted (soft: they stay on disk); return the indexes newly marked."""
        chosen = {int(index) for index in indexes}
        added = chosen - self.deleted_indexes
        self._save_deleted(self.deleted_indexes | chosen)
        return added

    def restore(self, indexes: Iterable[int]) -> set[int]:
        """Remove the deletion mark from records; return the indexes that were marked."""
        chosen = {int(index) for index in indexes}
        removed = chosen & self.deleted_indexes
        self._save_deleted(self.deleted_indexes - chosen)
        return removed

    def _save_deleted(self, deleted: set[int]) -> None:
        if self.format == FORMAT_V2:
            manifest = v2.read_manifest(self.path)
            manifest.deleted_indexes = deleted
            v2.write_manifest(self.path, manifest)
        else:
            legacy.write_excluded(self.path, deleted)
        self.deleted_indexes = set(deleted)
        self._mark_deleted()
        log.info("%s: %d records marked deleted", self.path, len(self.deleted_indexes))

    def _mark_deleted(self) -> None:
        for record in self._records:
            record.deleted = record.index in self.deleted_indexes


def open_tub(path: str | os.PathLike[str], check_images: bool = True) -> Tub:
    """Open a tub for reading, choosing the format by the files in the folder.

    A folder with ``manifest.json`` is a Tub v2; one with ``meta.json`` or
    ``record_N.json`` files is the old format. ``check_images`` (default
    True) checks each image's JPEG markers at open; without it only records
    whose image file is missing are left out. Raises TubError when the
    folder does not exist or is not a tub.
    """
    tub_path = Path(path).expanduser()
    if not tub_path.is_dir():
        raise TubError(f"{tub_path}: no such folder; give the path of a tub folder")
    if (tub_path / v2.MANIFEST_NAME).is_file():
        tub = _open_v2(tub_path, check_images)
    elif legacy.looks_like_legacy(tub_path):
        tub = _open_legacy(tub_path, check_images)
    elif not any(not is_junk_name(entry.name) for entry in os.scandir(tub_path)):
        raise TubError(
            f"{tub_path}: no recordings yet (the folder is empty); record with 'autodrive drive' "
            f"(press Record on the driving page) or 'autodrive sim record'"
        )
    else:
        raise TubError(
            f"{tub_path}: not a tub (no manifest.json for Tub v2, no meta.json or record_N.json "
            f"for the old format); give the folder that holds those files"
        )
    _log_problems(tub)
    return tub


def _open_v2(tub_path: Path, check_images: bool) -> Tub:
    manifest = v2.read_manifest(tub_path)
    problems: Counter = Counter()
    raw_records: list[dict[str, Any]] = []
    next_index = 0

    for number, name in enumerate(manifest.paths):
        scan = v2.scan_catalog(tub_path / name)
        problems.update(scan.problems)
        if not scan.exists:
            problems[CATALOG_MISSING] += 1
            continue
        last_catalog = number == len(manifest.paths) - 1
        if scan.file_size == 0 and not (last_catalog and manifest.current_index <= next_index):
            problems[EMPTY_CATALOG] += 1

        start_index = next_index if scan.start_index is None else int(scan.start_index)
        for line_number, record in scan.records:
            if not isinstance(record.get(INDEX_KEY), int) or isinstance(record.get(INDEX_KEY), bool):
                problems[NO_INDEX] += 1
                record[INDEX_KEY] = start_index + line_number - 1
            raw_records.append(record)
        indexes = [record[INDEX_KEY] + 1 for _, record in scan.records]
        next_index = max([next_index, start_index + len(scan.line_lengths)] + indexes)

    if manifest.current_index != next_index:
        problems[CURRENT_INDEX_WRONG] += 1
    if _is_old_metadata(manifest.metadata):
        problems[OLD_METADATA] += 1
    for entry in os.scandir(tub_path):
        if is_junk_name(entry.name):
            problems[JUNK_FILE] += 1

    sessions = manifest.sessions.get("all_full_ids") or []
    images_dir = tub_path / v2.IMAGES_DIR
    records, unusable = _build_records(raw_records, manifest.inputs, manifest.types, images_dir,
                                       problems, check_images)
    return Tub(tub_path, FORMAT_V2, manifest.inputs, manifest.types, manifest.metadata,
               [str(session) for session in sessions], records, manifest.deleted_indexes, problems, unusable)


def _open_legacy(tub_path: Path, check_images: bool) -> Tub:
    contents = legacy.read_legacy(tub_path)
    problems = contents.problems
    records, unusable = _build_records(contents.records, contents.inputs, contents.types, tub_path,
                                       problems, check_images, require_session=False)
    return Tub(tub_path, FORMAT_LEGACY, contents.inputs, contents.types, contents.metadata, [],
               records, contents.excluded, problems, unusable)


def _is_old_metadata(metadata: dict[str, Any]) -> bool:
    # Tubs converted from the old format carry meta.json's contents on this line.
    return "inputs" in metadata and "types" in metadata


def _build_records(raw_records: list[dict[str, Any]], inputs: list[str], types: list[str],
                   images_dir: Path, problems: Counter, check_images: bool,
                   require_session: bool = True) -> tuple[list[Record], dict[int, str]]:
    """Turn parsed catalog lines into Records: normalise values, check images, sort by index."""
    kinds = dict(zip(inputs, types))
    image_inputs = [name for name in inputs if kinds[name] in IMAGE_TYPES]
    missing_counts: Counter = Counter()
    records: dict[int, Record] = {}
    unusable: dict[int, str] = {}

    for raw in raw_records:
        index = raw[INDEX_KEY]
        if index in records or index in unusable:
            problems[DUPLICATE_INDEX] += 1
            continue

        values: dict[str, Any] = {}
        for name, value in raw.items():
            if name in PRIVATE_KEYS:
                continue
            value, problem = normalize_value(value, kinds.get(name, ""))
            if problem:
                problems[problem] += 1
            values[name] = value
        for name in inputs:
            if name not in raw:
                missing_counts[name] += 1

        session_id = raw.get(SESSION_KEY)
        if require_session and session_id is None:
            problems[NO_SESSION_ID] += 1
        timestamp = raw.get(TIMESTAMP_KEY)

        image_path = None
        reason = None
        for name in image_inputs:
            file_name = values.get(name)
            if not isinstance(file_name, str) or not file_name:
                reason = IMAGE_NAME_MISSING
                break
            path = images_dir / file_name
            if image_path is None:
                image_path = path
            reason = _check_image(path, check_images)
            if reason:
                break
        if reason:
            problems[reason] += 1
            unusable[index] = reason
            continue

        records[index] = Record(
            index=index,
            values=values,
            image_path=image_path,
            timestamp_ms=int(timestamp) if isinstance(timestamp, (int, float)) else None,
            session_id=str(session_id) if session_id is not None else None,
        )

    total = len(records) + len(unusable)
    for name, count in missing_counts.items():
        if count == total:
            problems[UNUSED_INPUT] += 1
        else:
            problems[MISSING_INPUT] += count
    return [records[index] for index in sorted(records)], unusable


def _check_image(path: Path, check_images: bool) -> str | None:
    if not check_images or path.suffix.lower() not in (".jpg", ".jpeg"):
        return None if path.is_file() else IMAGE_MISSING
    state = jpeg_looks_complete(path)
    if state is None:
        return IMAGE_MISSING
    return None if state else IMAGE_INVALID


def _log_problems(tub: Tub) -> None:
    for problem, count in sorted(tub.problems.items()):
        level = logging.DEBUG if problem in NOTES else logging.WARNING
        log.log(level, "%s: %s (%d)", tub.path, problem, count)
