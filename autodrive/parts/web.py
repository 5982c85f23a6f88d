"""The browser joystick: a threaded part that serves the driving page, its websocket and the video.

Add it to a Vehicle with its channel lists::

    web = WebController.from_config(cfg)
    vehicle.add(web, inputs=WebController.INPUTS, outputs=WebController.OUTPUTS, threaded=True)

The listening socket is opened by the constructor, so a port in use fails at
once and ``web.port`` is known even when 0 was requested. ``update()`` runs
the tornado event loop on the part's thread until ``shutdown()``.
The websocket protocol is described in ``autodrive.web.protocol``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import numbers
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

import tornado.httpserver
import tornado.ioloop
import tornado.netutil

from autodrive import channels
from autodrive.errors import PartError
from autodrive.resources import templates_dir
from autodrive.web.control import ControlState
from autodrive.web.server import WebServer
from autodrive.web.video import FrameHub

log = logging.getLogger(__name__)

# Status messages go to every client this often.
STATE_INTERVAL_S = 0.2

_ALL_INTERFACES = ("", "0.0.0.0", "::")


class WebController:
    """Web controller part: outputs the driver's commands, shows the camera and the car's status.

    ``host``/``port``: where to listen (port 0 picks a free port, see ``port``).
    ``token``: access token; None makes a random one, "" turns access control off.
    ``watchdog_s``: throttle goes to zero after this long without a command (default 0.5 s).
    ``video_quality``: JPEG quality of the MJPEG stream, 10..100.
    ``mode``: drive mode at start-up. ``max_throttle``: starting maximum throttle, 0..1.
    ``has_pilot``: whether the car has a pilot model (default True); without
    one the page offers only ``user`` mode and pilot-mode requests get an error.
    ``clock``: time source for the watchdog and ``user/command_time`` (default ``time.monotonic``).
    """

    INPUTS = (
        channels.CAMERA_IMAGE,
        channels.CAMERA_FRAME,
        channels.RECORD_COUNT,
        channels.LOOP_HZ,
        channels.PILOT_ANGLE,
        channels.PILOT_THROTTLE,
        channels.SAFE_ANGLE,
        channels.SAFE_THROTTLE,
        channels.SIM_SPEED,
    )
    OUTPUTS = (
        channels.USER_ANGLE,
        channels.USER_THROTTLE,
        channels.USER_MODE,
        channels.RECORDING,
        channels.USER_ESTOP,
        channels.USER_MAX_THROTTLE,
        channels.USER_TIME,
    )

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8887,
        token: str | None = None,
        watchdog_s: float = 0.5,
        video_quality: int = 80,
        mode: str = "user",
        max_throttle: float = 0.5,
        templates: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        has_pilot: bool = True,
    ):
        self.host = host
        self.token = secrets.token_urlsafe(16) if token is None else token
        self.state = ControlState(watchdog_s=watchdog_s, mode=mode, max_throttle=max_throttle, clock=clock,
                                  has_pilot=has_pilot)
        self.hub = FrameHub(quality=video_quality)
        self.templates = Path(templates) if templates is not None else templates_dir()
        if not (self.templates / "index.html").is_file():
            raise PartError(f"web controller page {self.templates / 'index.html'} is missing; reinstall autodrive")
        self.server = WebServer(self.state, self.hub, self.token, self.templates)

        try:
            self._sockets = tornado.netutil.bind_sockets(port, address=host or None)
        except OSError as error:
            raise PartError(
                f"web controller cannot listen on {host or '*'}:{port}: {error.strerror}; "
                "stop the program using that port or choose another with --set web.port=N"
            ) from error
        self.port = self._sockets[0].getsockname()[1]

        self._ready = threading.Event()
        self._finished = threading.Event()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> "WebController":
        """Build the part from the ``web`` section, ``drive.mode`` and ``web.start_max_throttle``."""
        web = cfg.web
        options = dict(
            host=web.host,
            port=web.port,
            token=web.token,
            watchdog_s=web.watchdog_s,
            video_quality=web.video_quality,
            mode=cfg.drive.mode,
            max_throttle=web.start_max_throttle,
        )
        options.update(overrides)
        return cls(**options)

    # -- addresses -----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """Return the address to open in a browser, without the token."""
        host = socket.gethostname() if self.host in _ALL_INTERFACES else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    @property
    def url(self) -> str:
        """Return the address to open in a browser, with the token when one is needed."""
        return f"{self.base_url}?token={self.token}" if self.token else self.base_url

    # -- thread body ---------------------------------------------------------

    def update(self) -> None:
        """Serve clients on this thread until ``shutdown()``."""
        if self._closing:
            return
        try:
            asyncio.run(self._serve())
        finally:
            self._close_sockets()
            self._finished.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._closing:
            return
        self.hub.attach(self._loop)
        http_server = tornado.httpserver.HTTPServer(self.server.application(), xheaders=False)
        http_server.add_sockets(self._sockets)

        watchdog_ms = min(50.0, self.state.watchdog_s * 1000 / 4)
        watchdog = tornado.ioloop.PeriodicCallback(self.server.check_watchdog, watchdog_ms)
        status = tornado.ioloop.PeriodicCallback(self.server.broadcast_state, STATE_INTERVAL_S * 1000)
        watchdog.start()
        status.start()
        self._announce()
        self._ready.set()
        if self._closing:
            self._stop.set()

        try:
            await self._stop.wait()
        finally:
            watchdog.stop()
            status.stop()
            http_server.stop()
            self.server.close_clients()
            self.hub.close()
            try:
                await asyncio.wait_for(http_server.close_all_connections(), timeout=1.0)
            except asyncio.TimeoutError:
                log.warning("web controller: some connections did not close within 1 s")
            log.info("web controller stopped")

    def _announce(self) -> None:
        log.info("web controller listening on %s:%d", self.host or "*", self.port)
        if not self.token:
            log.warning("web.token is empty: anyone on this network can open the page and drive the car")
        # Printed rather than logged, because the address contains the token.
        print(f"Drive the car at {self.url}", flush=True)

    # -- drive loop side -----------------------------------------------------

    def run_threaded(
        self,
        image: Any = None,
        frame_number: Any = None,
        record_count: Any = None,
        loop_hz: Any = None,
        pilot_angle: Any = None,
        pilot_throttle: Any = None,
        safe_angle: Any = None,
        safe_throttle: Any = None,
        sim_speed: Any = None,
    ) -> tuple[float, float, str, bool, bool, float, float | None]:
        """Take the car's newest frame and status; return the outputs in ``OUTPUTS`` order."""
        self.hub.offer(image, frame_number)
        self.state.set_status(
            {
                "loop_hz": _rounded(loop_hz, 1),
                "record_count": record_count,
                "pilot_angle": _rounded(pilot_angle, 3),
                "pilot_throttle": _rounded(pilot_throttle, 3),
                "safe_angle": _rounded(safe_angle, 3),
                "safe_throttle": _rounded(safe_throttle, 3),
                "sim_speed": _rounded(sim_speed, 2),
            }
        )
        return self.state.outputs()

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> "WebController":
        """Run ``update()`` on a thread of its own and wait until it serves; for use without a Vehicle."""
        self._thread = threading.Thread(target=self.update, name="web-controller", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise PartError(f"web controller did not start within {timeout_s} s")
        return self

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """Wait until the server accepts connections; return False on timeout."""
        return self._ready.wait(timeout_s)

    def shutdown(self) -> None:
        """Close every connection and stop the event loop; safe to call more than once."""
        if self._closing:
            return
        self._closing = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                log.debug("web controller event loop already closed")
        else:
            self._close_sockets()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> "WebController":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


def create_web_controller(cfg: Any, **overrides: Any) -> WebController:
    """Build the web controller from a Config; keyword arguments replace config values."""
    return WebController.from_config(cfg, **overrides)


def _rounded(value: Any, digits: int) -> Any:
    """Return a JSON-safe copy of a status value: numbers rounded, NaN and infinity as None."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return round(value, digits) if math.isfinite(value) else None
    return str(value)
