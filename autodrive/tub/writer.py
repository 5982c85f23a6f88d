"""Writing Tub v2 without ever making the caller wait for the disk.

``TubWriter.write`` only appends the values to a bounded queue, without a
lock or a system call, so it never wakes another thread or gives up the
CPU. Worker threads poll that queue every ``POLL_S`` when it is empty,
encode the images (OpenCV releases the GIL while it encodes, so two workers
use two cores), write the image files, and append the catalog lines in index
order. When the queue is full the record is dropped and counted. Every
catalog line is flushed to the operating system as it is written. A sync
thread forces the new image files and then the catalog to disk every
``fsync_interval_s``, and when that is 0 the workers do it after each
record. A power cut therefore costs at most the records of the last
interval (1 s by default). The sync thread also refreshes
the manifests at most once a second. Both happen again at each new catalog
and at close, and ``repair`` rebuilds the manifests from the catalogs after
a crash.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from autodrive.tub import v2
from autodrive.tub.record import IMAGE_TYPES, INDEX_KEY, SESSION_KEY, TIMESTAMP_KEY, TubError, is_junk_name

log = logging.getLogger(__name__)

KNOWN_TYPES = ("float", "int", "str", "boolean", "image_array", "image", "gray16_array", "nparray", "list", "vector")

# Problems the writer counts in ``TubWriter.problems``.
NON_FINITE_STORED = "NaN or infinite value stored as null"
UNSTORABLE_VALUE = "value could not be stored and was stored as null"
IMAGE_WRITE_FAILED = "image file could not be written"

MANIFEST_INTERVAL_S = 1.0
CLOSE_TIMEOUT_S = 30.0
_SESSION_NUMBER = re.compile(r"_(\d+)$")
# How long an idle worker sleeps before looking at the queue again. It delays a
# record's way to the disk by at most this much.
POLL_S = 0.002


class TubWriter:
    """Append one recording session to a Tub v2, creating the tub if needed.

    ``inputs`` are channel names and ``types`` their Donkey Car types
    (float, int, str, boolean, image_array, nparray, list, vector). An
    ``image_array`` value is an RGB uint8 array, encoded to JPEG at
    ``jpeg_quality`` (10..100), or bytes that are already a JPEG and are
    stored unchanged. ``queue_size`` records (default 200) wait for the
    workers before new ones are dropped; ``workers`` threads (default 2)
    encode and write. ``metadata`` is stored on manifest line 3 of a new tub.

    Image arrays are queued as they are, not copied, because a copy would
    double the caller's time. autodrive's camera parts hand out a new array
    per frame. Set ``copy_images`` when a part changes its arrays in place
    after handing them on. ``sync_images=False`` skips forcing image files
    to disk, for tools whose recordings can be made again.

    Opening an existing tub repairs its manifests from its catalogs first.
    An input that the tub already declares with another type raises
    TubError. Inputs the tub does not declare yet are added to its manifest
    just before the session's first record, so a session that records
    nothing leaves the manifest's inputs as they were.
    """

    def __init__(self, path: str | os.PathLike[str], inputs: Iterable[str], types: Iterable[str],
                 metadata: Mapping[str, Any] | None = None, *, max_catalog_len: int = v2.DEFAULT_MAX_LEN,
                 jpeg_quality: int = 90, queue_size: int = 200, fsync_interval_s: float = 1.0,
                 workers: int = 2, copy_images: bool = False, sync_images: bool = True):
        self.path = Path(path).expanduser()
        self.inputs = list(inputs)
        self.types = list(types)
        _check_arguments(self.path, self.inputs, self.types, jpeg_quality, queue_size, fsync_interval_s,
                         workers, max_catalog_len)
        self.jpeg_quality = int(jpeg_quality)
        self.fsync_interval_s = float(fsync_interval_s)
        self.copy_images = copy_images
        self.sync_images = sync_images
        self.problems: Counter = Counter()
        self.error: BaseException | None = None
        self.count = 0
        self._dropped_full = 0
        self._dropped_failed = 0
        self._closed = False

        self._kinds = dict(zip(self.inputs, self.types))
        self._new_inputs: list[tuple[str, str]] = []
        self._images_dir = self.path / v2.IMAGES_DIR
        self._open_or_create(dict(metadata or {}), max_catalog_len)

        # deque.append and deque.popleft are atomic in CPython, so the caller needs no lock.
        self._queue: deque = deque()
        self._queue_size = int(queue_size)
        self._closing = False
        self._take_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._ready: dict[int, tuple[bytes, list[str]]] = {}
        self._next_commit = self._next_index
        self._session_registered = False
        # Held while the catalog file is synced, switched or closed, and while a
        # manifest is written. Taken after _commit_lock, never before it.
        self._sync_lock = threading.Lock()
        # Image files written since the last sync; the sync thread fsyncs them
        # before the catalog, so a synced catalog line has its image on disk.
        self._unsynced_images: list[Path] = []
        self._unsynced_lock = threading.Lock()
        self._stop_sync = threading.Event()
        self._last_manifest = time.monotonic()
        self._threads = [
            threading.Thread(target=self._work, name=f"tub-writer-{number}", daemon=True)
            for number in range(workers)
        ]
        self._threads.append(threading.Thread(target=self._sync_periodically, name="tub-sync", daemon=True))
        for thread in self._threads:
            thread.start()
        log.info("recording into %s as session %s from index %d", self.path, self.session_id, self._next_index)

    # -- the caller's side -----------------------------------------------------

    @property
    def dropped(self) -> int:
        """Records not written: the queue was full, or the writer had failed."""
        return self._dropped_full + self._dropped_failed

    @property
    def pending(self) -> int:
        """Records waiting on the queue."""
        return len(self._queue)

    def write(self, values: Mapping[str, Any], timestamp_ms: int | None = None, block: bool = False) -> bool:
        """Queue one record and return at once: True when queued, False when dropped.

        ``values`` maps channel names to values; channels that are not inputs
        of this writer are ignored. The record's ``_timestamp_ms`` is
        ``timestamp_ms`` or else the wall-clock time of this call. ``block``
        waits for room on the queue instead of dropping, for tools that copy
        tubs; the drive loop never sets it. Raises TubError after ``close()``.
        """
        if self._closed:
            raise TubError(f"{self.path}: the tub writer is closed; open a new TubWriter to record again")
        if self.error is not None:
            self._dropped_failed += 1
            return False

        if timestamp_ms is None:
            timestamp_ms = time.time_ns() // 1_000_000
        record = {name: values[name] for name in self.inputs if name in values}
        if self.copy_images:
            for name, value in record.items():
                if isinstance(value, np.ndarray):
                    record[name] = value.copy()
        while len(self._queue) >= self._queue_size:
            if not block or self.error is not None:
                self._dropped_full += 1
                return False
            time.sleep(POLL_S)
        self._queue.append((record, int(timestamp_ms)))
        return True

    def write_row(self, row: tuple[Any, ...]) -> bool:
        """Queue one record given as values in the order of ``inputs``; the drive loop's fast path.

        Does what ``write`` does with ``block=False`` and the current time,
        in fewer steps. Raises TubError after ``close()``.
        """
        if self._closed:
            raise TubError(f"{self.path}: the tub writer is closed; open a new TubWriter to record again")
        if self.error is not None or len(self._queue) >= self._queue_size:
            if self.error is None:
                self._dropped_full += 1
            else:
                self._dropped_failed += 1
            return False
        if self.copy_images:
            row = tuple(value.copy() if isinstance(value, np.ndarray) else value for value in row)
        self._queue.append((row, time.time_ns() // 1_000_000))
        return True

    def close(self) -> None:
        """Write what is queued, force it to disk and update the manifests; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._stop_sync.set()
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            log.error("%s: the tub writer threads did not finish within %.0f s; "
                      "the catalog keeps every record written so far", self.path, CLOSE_TIMEOUT_S)

        self._sync_images()
        with self._commit_lock, self._sync_lock:
            try:
                self._sync(manifests=True)
            except OSError as error:
                self._fail(error)
            self._catalog_file.close()
        log.info("closed %s: %d records written in session %s, %d dropped",
                 self.path, self.count, self.session_id, self.dropped)
        for problem, number in sorted(self.problems.items()):
            log.warning("%s: %s (%d)", self.path, problem, number)

    def __enter__(self) -> "TubWriter":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- opening ---------------------------------------------------------------

    def _open_or_create(self, metadata: dict[str, Any], max_catalog_len: int) -> None:
        if (self.path / v2.MANIFEST_NAME).is_file():
            self._open_existing()
        else:
            self._create(metadata, max_catalog_len)
        self._images_dir.mkdir(exist_ok=True)

    def _create(self, metadata: dict[str, Any], max_catalog_len: int) -> None:
        if self.path.exists():
            if not self.path.is_dir():
                raise TubError(f"{self.path}: exists and is not a folder; choose another tub path")
            others = [entry.name for entry in os.scandir(self.path) if not is_junk_name(entry.name)]
            if others:
                raise TubError(
                    f"{self.path}: the folder is not empty and has no manifest.json (found {sorted(others)[:3]}); "
                    f"choose an empty or new folder, or convert an old tub with 'autodrive tub convert'"
                )
        self.path.mkdir(parents=True, exist_ok=True)

        self._manifest = v2.Manifest(
            inputs=list(self.inputs),
            types=list(self.types),
            metadata=metadata,
            manifest_metadata={"created_at": time.time()},
            paths=[v2.catalog_name(0)],
            current_index=0,
            max_len=max_catalog_len,
        )
        catalog_path = self.path / v2.catalog_name(0)
        catalog_path.touch()
        v2.write_catalog_manifest(catalog_path, [], 0)
        v2.write_manifest(self.path, self._manifest)
        self._line_lengths: list[int] = []
        self._catalog_start = 0
        self._next_index = 0
        self.session_id = _session_name(0)
        self._session_number = 0
        self._open_catalog(catalog_path)

    def _open_existing(self) -> None:
        result = v2.repair(self.path)
        for change in result.changes:
            log.warning("%s: repaired after an unclean stop: %s", self.path, change)
        manifest = result.manifest
        self._merge_inputs(manifest)

        last_number = -1
        sessions = manifest.sessions
        if isinstance(sessions.get("last_id"), int):
            last_number = sessions["last_id"]
        for scan in result.scans:
            for _, record in scan.records:
                match = _SESSION_NUMBER.search(str(record.get(SESSION_KEY, "")))
                if match:
                    last_number = max(last_number, int(match.group(1)))
        self._session_number = last_number + 1
        self.session_id = _session_name(self._session_number)

        self._manifest = manifest
        last_scan = result.scans[-1]
        self._line_lengths = list(last_scan.line_lengths)
        self._catalog_start = int(last_scan.start_index or 0)
        self._next_index = manifest.current_index
        self._open_catalog(self.path / manifest.paths[-1])

    def _merge_inputs(self, manifest: v2.Manifest) -> None:
        """Check the writer's inputs against the tub's and note the new ones for ``_register_session``."""
        declared = dict(zip(manifest.inputs, manifest.types))
        for name, kind in zip(self.inputs, self.types):
            if name in declared and declared[name] != kind:
                raise TubError(
                    f"{self.path}: input {name!r} is stored as {declared[name]!r} in this tub but the writer "
                    f"was given {kind!r}; record into a new tub folder or use the same type"
                )
            if name not in declared:
                self._new_inputs.append((name, kind))

    def _open_catalog(self, catalog_path: Path) -> None:
        self._catalog_path = catalog_path
        self._catalog_file = open(catalog_path, "ab")

    # -- the workers' side ------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._take_lock:
                item = self._queue.popleft() if self._queue else None
                if item is not None:
                    index = self._next_index
                    self._next_index += 1
            if item is None:
                if self._closing:
                    return
                time.sleep(POLL_S)
                continue
            values, timestamp_ms = item
            if isinstance(values, tuple):
                values = dict(zip(self.inputs, values))
            try:
                line, problems = self._encode(index, values, timestamp_ms)
            except Exception:  # noqa: BLE001 - a bad value must never stop the recording thread
                log.exception("%s: record %d could not be encoded; it is stored without its values", self.path, index)
                line, _ = self._encode(index, {}, timestamp_ms)
                problems = [UNSTORABLE_VALUE]
            self._commit(index, line, problems)

    def _encode(self, index: int, values: dict[str, Any], timestamp_ms: int) -> tuple[bytes, list[str]]:
        """Write the images of one record and return its catalog line."""
        problems: list[str] = []
        record: dict[str, Any] = {}
        for name, value in values.items():
            kind = self._kinds[name]
            if kind in IMAGE_TYPES and value is not None:
                record[name] = self._write_image(index, name, kind, value, problems)
            else:
                record[name] = _convert(value, kind, problems)
        record[INDEX_KEY] = index
        record[SESSION_KEY] = self.session_id
        record[TIMESTAMP_KEY] = timestamp_ms
        line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        return line.encode("utf-8"), problems

    def _write_image(self, index: int, name: str, kind: str, value: Any, problems: list[str]) -> str:
        import cv2

        extension = ".png" if kind == "gray16_array" else ".jpg"
        file_name = f"{index}_{name.replace('/', '_')}_{extension}"
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = value
        else:
            image = np.asarray(value)
            if kind == "gray16_array":
                ok, encoded = cv2.imencode(extension, image.astype(np.uint16))
            else:
                if image.ndim == 3 and image.shape[2] == 3:
                    image = cv2.cvtColor(image.astype(np.uint8, copy=False), cv2.COLOR_RGB2BGR)
                ok, encoded = cv2.imencode(extension, image.astype(np.uint8, copy=False),
                                           [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                problems.append(UNSTORABLE_VALUE)
                return file_name
            data = encoded.data
        try:
            image_path = self._images_dir / file_name
            descriptor = os.open(image_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(descriptor, data)
                if self.sync_images and self.fsync_interval_s == 0:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)
            if self.sync_images and self.fsync_interval_s > 0:
                with self._unsynced_lock:
                    self._unsynced_images.append(image_path)
        except OSError as error:
            problems.append(IMAGE_WRITE_FAILED)
            log.error("%s: failed to write %s: %s", self.path, file_name, error.strerror)
        return file_name

    def _commit(self, index: int, line: bytes, problems: list[str]) -> None:
        """Append ready lines to the catalog in index order, whichever worker finished them."""
        with self._commit_lock:
            self._ready[index] = (line, problems)
            if self.error is not None:
                self._dropped_failed += len(self._ready)
                self._ready.clear()
                return
            try:
                written = 0
                while self._next_commit in self._ready:
                    line, problems = self._ready.pop(self._next_commit)
                    self._append(self._next_commit, line)
                    self.problems.update(problems)
                    self._next_commit += 1
                    written += 1
                if written:
                    self._catalog_file.flush()
                    # Counted after the flush, so ``count`` never includes a line still in this process's buffer.
                    self.count += written
                    if self.fsync_interval_s == 0:
                        with self._sync_lock:
                            os.fsync(self._catalog_file.fileno())
            except OSError as error:
                self._fail(error)

    def _append(self, index: int, line: bytes) -> None:
        if not self._session_registered:
            self._register_session()
        lines = len(self._line_lengths)
        if lines > 0 and (lines >= self._manifest.max_len or index % self._manifest.max_len == 0):
            self._start_catalog(index)
        self._catalog_file.write(line)
        self._line_lengths.append(len(line))

    def _register_session(self) -> None:
        # Written before the first record, so that a crash cannot lead the next
        # session to reuse this id, and no record contains an input the manifest lacks.
        sessions = dict(self._manifest.sessions)
        sessions["all_full_ids"] = list(sessions.get("all_full_ids") or []) + [self.session_id]
        sessions["last_id"] = self._session_number
        sessions["last_full_id"] = self.session_id
        with self._sync_lock:
            for name, kind in self._new_inputs:
                self._manifest.inputs.append(name)
                self._manifest.types.append(kind)
                log.info("%s: added input %s (%s) to the manifest", self.path, name, kind)
            self._new_inputs = []
            self._manifest.manifest_metadata["sessions"] = sessions
            v2.write_manifest(self.path, self._manifest)
        self._session_registered = True

    def _start_catalog(self, start_index: int) -> None:
        with self._sync_lock:
            self._switch_catalog(start_index)

    def _switch_catalog(self, start_index: int) -> None:
        self._catalog_file.flush()
        os.fsync(self._catalog_file.fileno())
        v2.write_catalog_manifest(self._catalog_path, self._line_lengths, self._catalog_start)
        self._catalog_file.close()

        name = v2.catalog_name(len(self._manifest.paths))
        catalog_path = self.path / name
        catalog_path.touch()
        v2.write_catalog_manifest(catalog_path, [], start_index)
        self._manifest.paths.append(name)
        self._manifest.current_index = start_index
        v2.write_manifest(self.path, self._manifest)
        self._line_lengths = []
        self._catalog_start = start_index
        self._open_catalog(catalog_path)

    def _sync_periodically(self) -> None:
        """Body of the sync thread: fsync the catalog and refresh the manifests, off the workers' path."""
        period_s = self.fsync_interval_s if self.fsync_interval_s > 0 else MANIFEST_INTERVAL_S
        while not self._stop_sync.wait(period_s):
            if self.error is not None:
                return
            manifests = time.monotonic() - self._last_manifest >= MANIFEST_INTERVAL_S
            self._sync_images()
            try:
                with self._sync_lock:
                    if not self._catalog_file.closed:
                        self._sync(manifests)
            except OSError as error:
                with self._commit_lock:
                    self._fail(error)
                return

    def _sync_images(self) -> None:
        """Force the images written since the last call to disk, without holding the writer's locks."""
        with self._unsynced_lock:
            paths, self._unsynced_images = self._unsynced_images, []
        failed = 0
        for path in paths:
            try:
                descriptor = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
            except OSError:
                failed += 1
        if failed:
            self.problems["image could not be forced to disk"] += failed
            log.warning("%s: %d image files could not be forced to disk with fsync", self.path, failed)

    def _sync(self, manifests: bool) -> None:
        # Called with _sync_lock held. The catalog is flushed by the workers, so
        # fsync here covers every line counted so far. The images of those lines
        # were forced to disk just before, except for lines committed in between:
        # after a power cut those few records may be read as unusable and skipped.
        os.fsync(self._catalog_file.fileno())
        if manifests:
            v2.write_catalog_manifest(self._catalog_path, list(self._line_lengths), self._catalog_start)
            self._manifest.current_index = self._next_commit
            v2.write_manifest(self.path, self._manifest)
            self._last_manifest = time.monotonic()

    def _fail(self, error: OSError) -> None:
        if self.error is None:
            log.error("%s: recording stopped, the catalog cannot be written: %s; "
                      "every record written before this is kept", self.path, error)
        self.error = error
        self._dropped_failed += len(self._ready)
        self._ready.clear()


def _convert(value: Any, kind: str, problems: list[str]) -> Any:
    """Convert one value to what JSON stores for its Donkey Car type. NaN and infinity become null."""
    if value is None:
        return None
    try:
        if kind == "float":
            number = float(value)
            if not math.isfinite(number):
                problems.append(NON_FINITE_STORED)
                return None
            return number
        if kind == "int":
            return int(value)
        if kind == "boolean":
            return bool(value)
        if kind == "str":
            return str(value)
        if kind in ("nparray", "list", "vector"):
            items = value.tolist() if isinstance(value, np.ndarray) else list(value)
            return [_finite_or_none(item, problems) for item in items]
    except (TypeError, ValueError, OverflowError):
        problems.append(UNSTORABLE_VALUE)
        return None
    return value


def _finite_or_none(item: Any, problems: list[str]) -> Any:
    if isinstance(item, float) and not math.isfinite(item):
        problems.append(NON_FINITE_STORED)
        return None
    return item


def _session_name(number: int) -> str:
    """Return a session id in Donkey Car's form, the date and a number: ``25-06-01_3``."""
    return f"{time.strftime('%y-%m-%d')}_{number}"


def _check_arguments(path: Path, inputs: list[str], types: list[str], jpeg_quality: int, queue_size: int,
                     fsync_interval_s: float, workers: int, max_catalog_len: int) -> None:
    if len(inputs) != len(types):
        raise TubError(f"{path}: {len(inputs)} inputs {inputs} but {len(types)} types {types}; give one type per input")
    if len(set(inputs)) != len(inputs):
        raise TubError(f"{path}: inputs {inputs} name a channel twice")
    unknown = [kind for kind in types if kind not in KNOWN_TYPES]
    if unknown:
        raise TubError(f"{path}: unknown input types {unknown}; use {', '.join(KNOWN_TYPES)}")
    if not 10 <= jpeg_quality <= 100:
        raise TubError(f"jpeg_quality = {jpeg_quality} is outside 10..100")
    if queue_size < 1 or workers < 1 or max_catalog_len < 1:
        raise TubError(f"queue_size ({queue_size}), workers ({workers}) and max_catalog_len "
                       f"({max_catalog_len}) must each be at least 1")
    if fsync_interval_s < 0:
        raise TubError(f"fsync_interval_s = {fsync_interval_s} must be 0 or more seconds")
