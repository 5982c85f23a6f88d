"""The files of a Donkey Car Tub v2 on disk: manifest.json, catalogs and their manifests.

Layout of a tub folder::

    manifest.json                5 JSON lines: inputs, types, user metadata,
                                 manifest metadata (created_at, sessions),
                                 catalog metadata (paths, current_index,
                                 max_len, deleted_indexes)
    catalog_K.catalog            one JSON record per line, max_len records each
    catalog_K.catalog_manifest   one JSON line: created_at, line_lengths
                                 (bytes of each line including its newline),
                                 path, start_index
    images/N_cam_image_array_.jpg

The catalogs are the truth. The manifests are indexes that ``repair_tub``
rebuilds from them when a crash left them behind.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodrive.tub.record import (
    BLANK_LINE,
    CATALOG_MANIFEST_MISSING,
    LINE_LENGTHS_WRONG,
    NO_FINAL_NEWLINE,
    NOT_A_RECORD,
    TRUNCATED_LINE,
    UNPARSABLE_LINE,
    TubError,
)

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
IMAGES_DIR = "images"
CATALOG_SUFFIX = ".catalog"
CATALOG_MANIFEST_SUFFIX = ".catalog_manifest"
DEFAULT_MAX_LEN = 1000


@dataclass
class Manifest:
    """The five lines of manifest.json."""

    inputs: list[str]
    types: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    manifest_metadata: dict[str, Any] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    current_index: int = 0
    max_len: int = DEFAULT_MAX_LEN
    deleted_indexes: set[int] = field(default_factory=set)

    @property
    def sessions(self) -> dict[str, Any]:
        """The ``sessions`` entry of line 4: all_full_ids, last_id, last_full_id."""
        sessions = self.manifest_metadata.get("sessions")
        return sessions if isinstance(sessions, dict) else {}

    def to_text(self) -> str:
        """Return the file contents, in the layout Donkey Car writes."""
        catalog_metadata = {
            "paths": self.paths,
            "current_index": self.current_index,
            "max_len": self.max_len,
            "deleted_indexes": sorted(self.deleted_indexes),
        }
        lines = [self.inputs, self.types, self.metadata, self.manifest_metadata, catalog_metadata]
        return "".join(json.dumps(line) + "\n" for line in lines)


@dataclass
class CatalogScan:
    """Lines, records and problems found in one catalog file."""

    name: str
    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    line_lengths: list[int] = field(default_factory=list)
    good_size: int = 0
    file_size: int = 0
    exists: bool = True
    start_index: int | None = None
    created_at: float | None = None
    manifest_line_lengths: list[int] | None = None
    problems: Counter = field(default_factory=Counter)

    @property
    def manifest_agrees(self) -> bool:
        """True when the catalog_manifest's line_lengths match the lines found."""
        return self.manifest_line_lengths == self.line_lengths


def read_manifest(tub_path: Path) -> Manifest:
    """Read manifest.json, or raise TubError saying which line is wrong."""
    manifest_path = tub_path / MANIFEST_NAME
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TubError(f"{tub_path}: no {MANIFEST_NAME}, so this is not a Tub v2 folder") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TubError(f"{manifest_path}: failed to read the file: {error}") from None

    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 5:
        raise TubError(
            f"{manifest_path}: expected 5 JSON lines, found {len(lines)}; "
            f"run 'autodrive tub check --repair {tub_path}' to rebuild it from the catalogs"
        )
    parsed = []
    for number, line in enumerate(lines[:5], start=1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise TubError(
                f"{manifest_path}: line {number} is not valid JSON ({error.msg}); "
                f"run 'autodrive tub check --repair {tub_path}' to rebuild it from the catalogs"
            ) from None

    inputs, types, metadata, manifest_metadata, catalog_metadata = parsed
    if not isinstance(inputs, list) or not isinstance(types, list) or len(inputs) != len(types):
        raise TubError(f"{manifest_path}: lines 1 and 2 must be lists of input names and types of equal length")
    if not isinstance(catalog_metadata, dict) or not isinstance(catalog_metadata.get("paths"), list):
        raise TubError(
            f"{manifest_path}: line 5 has no 'paths' list of catalogs; "
            f"run 'autodrive tub check --repair {tub_path}' to rebuild it from the catalogs"
        )

    deleted = catalog_metadata.get("deleted_indexes") or []
    return Manifest(
        inputs=[str(name) for name in inputs],
        types=[str(kind) for kind in types],
        metadata=metadata if isinstance(metadata, dict) else {},
        manifest_metadata=manifest_metadata if isinstance(manifest_metadata, dict) else {},
        paths=[str(path) for path in catalog_metadata["paths"]],
        current_index=int(catalog_metadata.get("current_index") or 0),
        max_len=int(catalog_metadata.get("max_len") or DEFAULT_MAX_LEN),
        deleted_indexes={int(index) for index in deleted if isinstance(index, (int, float))},
    )


def catalog_manifest_path(catalog_path: Path) -> Path:
    """Return the catalog_manifest that belongs to a catalog file."""
    return catalog_path.with_name(catalog_path.stem + CATALOG_MANIFEST_SUFFIX)


def scan_catalog(catalog_path: Path) -> CatalogScan:
    """Read every line of one catalog and compare it with its catalog_manifest.

    A line that is not JSON is skipped and counted. A last line without a
    newline is kept when it parses (its write was complete) and counted as
    truncated when it does not. ``good_size`` is the byte length up to the
    end of the last line that is kept, which is where a writer resumes.
    """
    scan = CatalogScan(name=catalog_path.name)
    _read_catalog_manifest(catalog_path, scan)

    try:
        data = catalog_path.read_bytes()
    except FileNotFoundError:
        scan.exists = False
        return scan
    scan.file_size = len(data)

    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        complete = end >= 0
        if not complete:
            end = len(data)
        raw = data[position:end]
        length = end - position + (1 if complete else 0)
        line_number = len(scan.line_lengths) + 1
        record = _parse_line(raw, complete, scan)

        if record is not None or complete:
            scan.line_lengths.append(length)
            scan.good_size = position + length
        if record is not None:
            scan.records.append((line_number, record))
        position = end + 1

    if scan.manifest_line_lengths is not None and not scan.manifest_agrees:
        scan.problems[LINE_LENGTHS_WRONG] += 1
    return scan


def _parse_line(raw: bytes, complete: bool, scan: CatalogScan) -> dict[str, Any] | None:
    text = raw.rstrip(b"\r")
    if not text.strip():
        if complete:
            scan.problems[BLANK_LINE] += 1
        return None
    try:
        record = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        scan.problems[UNPARSABLE_LINE if complete else TRUNCATED_LINE] += 1
        return None
    if not isinstance(record, dict):
        scan.problems[NOT_A_RECORD] += 1
        return None
    if not complete:
        scan.problems[NO_FINAL_NEWLINE] += 1
    return record


def _read_catalog_manifest(catalog_path: Path, scan: CatalogScan) -> None:
    path = catalog_manifest_path(catalog_path)
    try:
        first_line = path.read_text(encoding="utf-8").split("\n", 1)[0]
        contents = json.loads(first_line)
        lengths = contents["line_lengths"]
        scan.manifest_line_lengths = [int(length) for length in lengths]
        scan.start_index = contents.get("start_index")
        scan.created_at = contents.get("created_at")
    except FileNotFoundError:
        if catalog_path.exists():
            scan.problems[CATALOG_MANIFEST_MISSING] += 1
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        scan.problems[CATALOG_MANIFEST_MISSING] += 1


# -- writing ------------------------------------------------------------------


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a crash leaves the old or the new file, never half of one."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8", newline="\n") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def write_manifest(tub_path: Path, manifest: Manifest) -> None:
    """Write manifest.json atomically."""
    write_atomically(tub_path / MANIFEST_NAME, manifest.to_text())


def write_catalog_manifest(catalog_path: Path, line_lengths: list[int], start_index: int,
                           created_at: float | None = None) -> None:
    """Write a catalog_manifest atomically, with Donkey Car's sorted keys."""
    manifest_path = catalog_manifest_path(catalog_path)
    contents = {
        "created_at": time.time() if created_at is None else created_at,
        "line_lengths": line_lengths,
        "path": manifest_path.name,
        "start_index": start_index,
    }
    write_atomically(manifest_path, json.dumps(contents, sort_keys=True) + "\n")


def catalog_name(number: int) -> str:
    """Return the file name of catalog number ``number``."""
    return f"catalog_{number}{CATALOG_SUFFIX}"


@dataclass
class RepairResult:
    """Changes made by ``repair``, with the manifest and catalog scans as they are afterwards."""

    changes: list[str]
    manifest: Manifest
    scans: list[CatalogScan]


def repair_tub(tub_path: Path) -> list[str]:
    """Bring manifest.json and the catalog manifests in line with the catalogs.

    Cuts a truncated last line off each catalog and ends a complete last
    line with its newline. Adds catalogs that exist on disk under the next
    expected name but are missing from ``paths``. Rewrites line_lengths and
    current_index from the lines found. Returns one line per change made
    (empty when the tub was consistent). Raises TubError when manifest.json
    is unreadable.
    """
    return repair(tub_path).changes


def repair(tub_path: Path) -> RepairResult:
    """Do the work of ``repair_tub`` and also return the manifest and catalog scans."""
    manifest = read_manifest(tub_path)
    changes: list[str] = []
    scans: list[CatalogScan] = []

    number = len(manifest.paths)
    while (tub_path / catalog_name(number)).is_file():
        manifest.paths.append(catalog_name(number))
        changes.append(f"added {catalog_name(number)}, which existed but was missing from manifest.json")
        number += 1

    next_index = 0
    for name in manifest.paths:
        catalog_path = tub_path / name
        scan = scan_catalog(catalog_path)
        scans.append(scan)
        if not scan.exists:
            catalog_path.touch()
            scan.exists = True
            changes.append(f"created the missing {name} as an empty catalog")

        if scan.good_size < scan.file_size:
            with open(catalog_path, "r+b") as file:
                file.truncate(scan.good_size)
            changes.append(f"removed {scan.file_size - scan.good_size} bytes of a truncated last line from {name}")
            scan.file_size = scan.good_size
        elif scan.line_lengths and not _ends_with_newline(catalog_path):
            with open(catalog_path, "ab") as file:
                file.write(b"\n")
            scan.line_lengths[-1] += 1
            scan.file_size += 1
            scan.good_size += 1
            changes.append(f"ended the last line of {name} with a newline")

        start_index = next_index if scan.start_index is None else int(scan.start_index)
        if not scan.manifest_agrees or scan.start_index is None:
            write_catalog_manifest(catalog_path, scan.line_lengths, start_index, scan.created_at)
            changes.append(f"rebuilt the line_lengths of {name} ({len(scan.line_lengths)} lines)")
            scan.manifest_line_lengths = list(scan.line_lengths)
            scan.start_index = start_index

        indexes = [record.get("_index") for _, record in scan.records]
        indexes = [index + 1 for index in indexes if isinstance(index, int)]
        next_index = max([next_index, start_index + len(scan.line_lengths)] + indexes)

    if manifest.current_index != next_index:
        changes.append(f"set current_index from {manifest.current_index} to {next_index}")
        manifest.current_index = next_index
    if changes:
        write_manifest(tub_path, manifest)
        for change in changes:
            log.info("%s: %s", tub_path, change)
    return RepairResult(changes, manifest, scans)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        if size == 0:
            return True
        file.seek(size - 1)
        return file.read(1) == b"\n"
