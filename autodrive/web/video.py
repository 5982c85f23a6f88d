"""MJPEG video for the web controller: each new camera frame is encoded once and shared by every viewer.

The drive loop's thread offers frames; encoding runs on one worker thread,
and only while someone watches. Viewers live on the tornado thread: each
waits for a newer encoded frame, so a frame is never sent twice to the same
viewer, and a slow viewer skips frames rather than queueing them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

BOUNDARY = "frame"


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """Encode an RGB (or grey) uint8 frame as JPEG bytes at ``quality`` (10..100)."""
    if frame.ndim == 3 and frame.shape[2] == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a frame of shape {frame.shape} and type {frame.dtype} as JPEG")
    return buffer.tobytes()


def part_header(length: int, frame_id: int) -> bytes:
    """Return the multipart header that precedes one JPEG of ``length`` bytes."""
    return (
        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {length}\r\n"
        f"X-Frame-Id: {frame_id}\r\n\r\n"
    ).encode("ascii")


class Viewer:
    """One connected MJPEG client: the id of the last frame it was sent, and its wake-up event."""

    def __init__(self) -> None:
        self.wakeup = asyncio.Event()
        self.last_frame_id = 0
        self.closed = False


class FrameHub:
    """Newest encoded frame plus the viewers waiting for the next one.

    ``offer()`` is called on the drive loop's thread; everything else runs on
    the tornado event loop passed to ``attach()``.
    """

    def __init__(self, quality: int = 80):
        self.quality = quality
        self.jpeg: bytes | None = None
        self.frame_id = 0  # counts encoded frames; 0 means none yet
        self.encoded_count = 0
        self.encode_s_total = 0.0
        self.viewers: set[Viewer] = set()
        self.closed = False
        self._viewer_count = 0  # read by the drive loop's thread without the event loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._last_offered: Any = None
        self._last_number: Any = None
        self._pending: np.ndarray | None = None
        self._encoding = False
        self._errors = 0

    # -- drive loop thread ---------------------------------------------------

    def offer(self, frame: np.ndarray | None, frame_number: Any = None) -> None:
        """Hand a camera frame to the hub; a repeated frame, or any frame while there are no viewers, is not encoded."""
        if frame is None or self._viewer_count == 0 or self._loop is None or self.closed:
            return
        if frame_number is not None:
            if frame_number == self._last_number:
                return
        elif frame is self._last_offered:
            return
        self._last_offered = frame
        self._last_number = frame_number
        try:
            self._loop.call_soon_threadsafe(self._on_frame, frame)
        except RuntimeError:
            # The event loop closed between the check above and this call: shutting down.
            pass

    # -- event loop thread ---------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-jpeg")

    def add_viewer(self) -> Viewer:
        viewer = Viewer()
        viewer.last_frame_id = self.frame_id
        self.viewers.add(viewer)
        self._viewer_count = len(self.viewers)
        log.info("video viewer connected (%d watching)", self._viewer_count)
        return viewer

    def remove_viewer(self, viewer: Viewer) -> None:
        if viewer in self.viewers:
            viewer.closed = True
            viewer.wakeup.set()
            self.viewers.discard(viewer)
            self._viewer_count = len(self.viewers)
            log.info("video viewer disconnected (%d watching)", self._viewer_count)

    def close(self) -> None:
        """Wake every viewer so its stream ends, and stop the encoder thread."""
        self.closed = True
        for viewer in list(self.viewers):
            viewer.closed = True
            viewer.wakeup.set()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _on_frame(self, frame: np.ndarray) -> None:
        self._pending = frame
        if not self._encoding and not self.closed:
            self._encoding = True
            asyncio.ensure_future(self._encode_pending())

    async def _encode_pending(self) -> None:
        try:
            while self._pending is not None and self.viewers and not self.closed:
                frame, self._pending = self._pending, None
                started = time.perf_counter()
                try:
                    jpeg = await self._loop.run_in_executor(self._executor, encode_jpeg, frame, self.quality)
                except (ValueError, cv2.error) as error:
                    self._errors += 1
                    if self._errors == 1 or self._errors % 100 == 0:
                        log.error("video frame not encoded (%d failures so far): %s", self._errors, error)
                    continue
                self.encode_s_total += time.perf_counter() - started
                self.encoded_count += 1
                self.jpeg = jpeg
                self.frame_id += 1
                for viewer in self.viewers:
                    viewer.wakeup.set()
        except RuntimeError as error:
            # The executor was shut down while a frame was queued: the server is closing.
            log.debug("video encoding stopped: %s", error)
        finally:
            self._encoding = False
            self._pending = None
