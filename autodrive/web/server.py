"""The web controller's tornado application: page, static files, control websocket, MJPEG video, status.

Everything here runs on the web controller's event loop thread. Access needs
the token, given as ``?token=`` once and then kept in a cookie; the
websocket also rejects connections whose Origin is not this server.
"""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any

import tornado.iostream
import tornado.web
import tornado.websocket

from autodrive.ratelimit import RateLimitedLog
from autodrive.web import protocol
from autodrive.web.control import ControlState
from autodrive.web.protocol import ROLE_DRIVER, ROLE_WATCHER, Control, Ping, ProtocolError, Release, Take
from autodrive.web.video import BOUNDARY, FrameHub, part_header

log = logging.getLogger(__name__)
access_log = logging.getLogger(__name__ + ".access")

COOKIE_NAME = "autodrive_token"

_client_numbers = itertools.count(1)

# Messages larger than this close the websocket (code 1009) before they are
# read; smaller ones over protocol.MAX_MESSAGE_BYTES get an error message back.
WEBSOCKET_MAX_BYTES = 64 * 1024

# A websocket client that sends no pong within this time after a ping is closed,
# so a driver whose phone dropped off the Wi-Fi frees the driving role.
WEBSOCKET_PING_S = 2.0

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    ),
}


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Log one finished request by path only, because its query string may contain the token."""
    status = handler.get_status()
    level = logging.DEBUG if status < 400 else logging.WARNING
    request = handler.request
    access_log.log(level, "%d %s %s (%s) %.1f ms", status, request.method, request.path, request.remote_ip, request.request_time() * 1000)


def token_matches(candidate: str | None, token: str) -> bool:
    """Compare a client's token with the server's in constant time; an empty server token accepts anyone."""
    if token == "":
        return True
    if not candidate:
        return False
    return hmac.compare_digest(candidate.encode("utf-8"), token.encode("utf-8"))


class WebServer:
    """The connected clients and their roles, plus the tornado application that serves them."""

    def __init__(self, state: ControlState, hub: FrameHub, token: str, templates: Path):
        self.state = state
        self.hub = hub
        self.token = token
        self.templates = templates
        self.clients: set[ControlSocket] = set()
        self.driver: ControlSocket | None = None
        self.rate_limited = RateLimitedLog(log)

    def application(self) -> tornado.web.Application:
        args = {"server": self}
        return tornado.web.Application(
            [
                (r"/", PageHandler, args),
                (r"/ws", ControlSocket, args),
                (r"/video", VideoHandler, args),
                (r"/status", StatusHandler, args),
                (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(self.templates)}),
            ],
            websocket_max_message_size=WEBSOCKET_MAX_BYTES,
            websocket_ping_interval=WEBSOCKET_PING_S,
            websocket_ping_timeout=WEBSOCKET_PING_S,
            compress_response=False,
            log_function=log_request,
        )

    # -- clients and roles ---------------------------------------------------

    def add_client(self, client: ControlSocket) -> None:
        self.clients.add(client)
        if self.driver is None:
            self._make_driver(client)
        else:
            client.role = ROLE_WATCHER
        log.info("control client %s connected as %s (%d connected)", client.peer, client.role, len(self.clients))
        client.send(
            "hello",
            role=client.role,
            watchdog_s=self.state.watchdog_s,
            modes=list(self.state.modes),
            state=self.state_message(),
        )
        if client.role == ROLE_WATCHER:
            client.send("role", role=ROLE_WATCHER, reason="another client is driving; you can watch")

    def remove_client(self, client: ControlSocket) -> None:
        self.clients.discard(client)
        if client is self.driver:
            self.driver = None
            self.state.stop_throttle()
            log.info("driver %s disconnected: throttle set to zero", client.peer)
            self.broadcast("role", role=ROLE_WATCHER, reason="the driver disconnected; you can take control")
        else:
            log.info("control client %s disconnected", client.peer)

    def _make_driver(self, client: ControlSocket) -> None:
        self.driver = client
        client.role = ROLE_DRIVER
        client.last_message_s = time.monotonic()

    def _take(self, client: ControlSocket) -> None:
        if client is self.driver:
            client.send("role", role=ROLE_DRIVER, reason="you are already driving")
            return
        previous = self.driver
        if previous is not None:
            silent_s = time.monotonic() - previous.last_message_s
            if silent_s < protocol.DRIVER_STALE_S:
                client.send("role", role=ROLE_WATCHER, reason="another client is driving; wait until it releases control")
                return
            previous.role = ROLE_WATCHER
            previous.send("role", role=ROLE_WATCHER, reason=f"you were silent for {silent_s:.1f} s and another client took control")
            log.info("driver %s was silent for %.1f s; control handed over", previous.peer, silent_s)
        self.state.stop_throttle()
        self._make_driver(client)
        client.send("role", role=ROLE_DRIVER, reason="you are driving")
        log.info("control client %s is now driving", client.peer)

    def _release(self, client: ControlSocket) -> None:
        if client is not self.driver:
            client.send("error", seq=None, error="only the driver can release control")
            return
        self.driver = None
        client.role = ROLE_WATCHER
        self.state.stop_throttle()
        log.info("driver %s released control: throttle set to zero", client.peer)
        self.broadcast("role", role=ROLE_WATCHER, reason="nobody is driving; you can take control")

    # -- messages ------------------------------------------------------------

    def handle_message(self, client: ControlSocket, raw: str | bytes) -> None:
        client.last_message_s = time.monotonic()
        try:
            message = protocol.parse_message(raw)
        except ProtocolError as error:
            self._reject(client, error.seq, str(error))
            return

        if isinstance(message, Ping):
            client.send("pong", t=message.t)
        elif isinstance(message, Take):
            self._take(client)
        elif isinstance(message, Release):
            self._release(client)
        elif isinstance(message, Control):
            self._control(client, message)

    def _control(self, client: ControlSocket, control: Control) -> None:
        if control.seq <= client.last_seq:
            self._reject(client, control.seq, f"seq {control.seq} is not greater than the last accepted seq {client.last_seq}")
            return

        if client is not self.driver:
            if control.is_estop_only():
                client.last_seq = control.seq
                if self.state.engage_estop():
                    log.warning("emergency stop engaged by watcher %s", client.peer)
                client.send("ack", seq=control.seq)
                return
            self._reject(client, control.seq, "another client is driving; only the emergency stop is accepted from watchers")
            return

        if control.mode is not None and control.mode not in self.state.modes:
            self._reject(client, control.seq, f"mode {control.mode} needs a pilot, and no pilot model is loaded; "
                                              "restart with 'autodrive drive --model PATH' to use it")
            return

        client.last_seq = control.seq
        for change in self.state.apply(control):
            log.info("%s (from %s)", change, client.peer)
        client.send("ack", seq=control.seq)

    def _reject(self, client: ControlSocket, seq: int | None, text: str) -> None:
        client.rejected += 1
        self.rate_limited.warning(f"reject {id(client)}", "message from %s rejected: %s", client.peer, text)
        client.send("error", seq=seq, error=text)

    # -- periodic work -------------------------------------------------------

    def check_watchdog(self) -> None:
        if self.state.check_watchdog():
            peer = self.driver.peer if self.driver is not None else "no driver"
            log.warning("control watchdog: no command for %.2f s from %s; throttle set to zero", self.state.watchdog_s, peer)
            self.broadcast_state()

    def state_message(self) -> dict[str, Any]:
        state = self.state.snapshot()
        state["driver"] = self.driver is not None
        state["viewers"] = len(self.hub.viewers)
        state["clients"] = len(self.clients)
        return state

    def broadcast_state(self) -> None:
        if self.clients:
            self.broadcast("state", state=self.state_message())

    def broadcast(self, kind: str, **fields: Any) -> None:
        text = protocol.encode(kind, **fields)
        for client in list(self.clients):
            client.send_text(text)

    def close_clients(self) -> None:
        for client in list(self.clients):
            client.close(1001, "the car is shutting down")


class AuthorizedMixin:
    """Token check shared by the page, the websocket, the video and the status handlers."""

    server: WebServer

    def authorized(self) -> bool:
        handler: tornado.web.RequestHandler = self  # type: ignore[assignment]
        candidate = handler.get_query_argument("token", None) or handler.get_cookie(COOKIE_NAME)
        return token_matches(candidate, self.server.token)

    def reject_unauthorized(self) -> None:
        handler: tornado.web.RequestHandler = self  # type: ignore[assignment]
        self.server.rate_limited.warning(
            "token", "request for %s from %s rejected: missing or wrong token", handler.request.path, handler.request.remote_ip
        )
        handler.set_status(403)
        handler.set_header("Content-Type", "text/plain; charset=utf-8")
        handler.finish("Missing or wrong token: open the address with ?token=... that the car printed when it started.\n")


class PageHandler(AuthorizedMixin, tornado.web.RequestHandler):
    def initialize(self, server: WebServer) -> None:
        self.server = server

    def get(self) -> None:
        if not self.authorized():
            self.reject_unauthorized()
            return
        if self.server.token and self.get_query_argument("token", None):
            self.set_cookie(COOKIE_NAME, self.server.token, httponly=True, samesite="Lax", expires_days=30)
        for name, value in PAGE_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish((self.server.templates / "index.html").read_bytes())


class StatusHandler(AuthorizedMixin, tornado.web.RequestHandler):
    def initialize(self, server: WebServer) -> None:
        self.server = server

    def get(self) -> None:
        if not self.authorized():
            self.reject_unauthorized()
            return
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(self.server.state_message()))


class VideoHandler(AuthorizedMixin, tornado.web.RequestHandler):
    """MJPEG stream: one multipart part per new encoded frame, each with its X-Frame-Id."""

    def initialize(self, server: WebServer) -> None:
        self.server = server
        self.viewer = None

    async def get(self) -> None:
        if not self.authorized():
            self.reject_unauthorized()
            return
        hub = self.server.hub
        self.set_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.set_header("Cache-Control", "no-store")
        self.viewer = viewer = hub.add_viewer()
        try:
            await self.flush()
            while True:
                await viewer.wakeup.wait()
                viewer.wakeup.clear()
                if viewer.closed or hub.closed:
                    break
                if hub.frame_id <= viewer.last_frame_id or hub.jpeg is None:
                    continue
                frame_id, jpeg = hub.frame_id, hub.jpeg
                self.write(part_header(len(jpeg), frame_id))
                self.write(jpeg)
                self.write(b"\r\n")
                viewer.last_frame_id = frame_id
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            hub.remove_viewer(viewer)
        if not self.request.connection.stream.closed():
            self.finish()

    def on_connection_close(self) -> None:
        if self.viewer is not None:
            self.server.hub.remove_viewer(self.viewer)


class ControlSocket(AuthorizedMixin, tornado.websocket.WebSocketHandler):
    """One websocket client: the driver or a watcher."""

    def initialize(self, server: WebServer) -> None:
        self.server = server
        self.role = ROLE_WATCHER
        self.last_seq = -1
        self.last_message_s = time.monotonic()
        self.rejected = 0
        self.peer = f"#{next(_client_numbers)} ({self.request.remote_ip})"

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if not self.authorized():
            self.reject_unauthorized()
            return
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        allowed = super().check_origin(origin)
        if not allowed:
            self.server.rate_limited.warning(
                "origin", "websocket from %s rejected: origin %r is not this server", self.request.remote_ip, origin
            )
        return allowed

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        self.server.add_client(self)

    def on_message(self, message: str | bytes) -> None:
        self.server.handle_message(self, message)

    def on_close(self) -> None:
        self.server.remove_client(self)

    def send(self, kind: str, **fields: Any) -> None:
        self.send_text(protocol.encode(kind, **fields))

    def send_text(self, text: str) -> None:
        try:
            self.write_message(text)
        except tornado.websocket.WebSocketClosedError:
            log.debug("message to %s dropped: websocket closed", self.peer)
