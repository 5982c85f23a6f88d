"""Web controller against a real tornado server on 127.0.0.1 with real websocket and HTTP clients."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
import websocket

from autodrive import channels
from autodrive.config import default_config
from autodrive.errors import PartError
from autodrive.parts.web import WebController, create_web_controller
from autodrive.ratelimit import RateLimitedLog
from autodrive.vehicle import Vehicle
from autodrive.web import protocol

TOKEN = "test-token-123"
WAIT_S = 10.0  # upper bound for things that happen asynchronously; never a speed requirement


class FakeClock:
    """Monotonic clock that moves only when a test advances it."""

    def __init__(self, start_s: float = 1000.0):
        self.now_s = start_s
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now_s

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now_s += seconds


def wait_for(condition, description: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {description}")


def start_web(**options) -> WebController:
    settings = dict(host="127.0.0.1", port=0, token=TOKEN, watchdog_s=10.0)
    settings.update(options)
    return WebController(**settings).start()


@pytest.fixture
def web():
    controller = start_web()
    yield controller
    controller.shutdown()


def connect(web: WebController, token: str | None = TOKEN, origin: str | None = None, cookie: bool = True):
    url = f"ws://127.0.0.1:{web.port}/ws"
    options = {"timeout": WAIT_S}
    if token is not None:
        if cookie:
            options["cookie"] = f"autodrive_token={token}"
        else:
            url += f"?token={token}"
    if origin is not None:
        options["origin"] = origin
    else:
        options["suppress_origin"] = True
    return websocket.create_connection(url, **options)


def receive(ws, kind: str) -> dict:
    """Return the next message of ``kind``, skipping the periodic state messages."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        message = json.loads(ws.recv())
        if message["type"] == kind:
            return message
        if {kind, message["type"]} == {"ack", "error"}:
            raise AssertionError(f"expected {kind}, got {message}")
    raise AssertionError(f"no {kind} message within {WAIT_S} s")


def send(ws, **fields) -> None:
    ws.send(json.dumps(fields))


def http_get(web: WebController, path: str, cookie: str | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{web.port}{path}")
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# -- protocol ------------------------------------------------------------------


def test_protocol_parses_full_control():
    message = protocol.parse_message(
        '{"type":"control","seq":7,"angle":-0.5,"throttle":0.25,"mode":"local_angle",'
        '"recording":true,"estop":false,"max_throttle":0.8}'
    )

    assert message == protocol.Control(7, -0.5, 0.25, "local_angle", True, False, 0.8)


def test_protocol_estop_only_detected():
    assert protocol.parse_message('{"type":"control","seq":1,"estop":true}').is_estop_only()
    assert not protocol.parse_message('{"type":"control","seq":1,"estop":true,"throttle":0}').is_estop_only()
    assert not protocol.parse_message('{"type":"control","seq":1,"estop":false}').is_estop_only()


# -- factory and channels ------------------------------------------------------------


def test_factory_reads_config():
    cfg = default_config(web__host="127.0.0.1", web__port=0, web__token="abc", web__watchdog_s=0.3, drive__mode="local")
    controller = create_web_controller(cfg)
    try:
        assert controller.port > 0
        assert controller.token == "abc"
        assert controller.state.watchdog_s == 0.3
        assert controller.run_threaded()[2] == "local"
        assert controller.run_threaded()[5] == cfg.web.start_max_throttle
        assert controller.url == f"http://127.0.0.1:{controller.port}/?token=abc"
    finally:
        controller.shutdown()


def test_random_token_differs_per_start():
    first = WebController(host="127.0.0.1", port=0)
    second = WebController(host="127.0.0.1", port=0)
    try:
        assert len(first.token) >= 16
        assert first.token != second.token
        assert first.url.endswith(f"?token={first.token}")
    finally:
        first.shutdown()
        second.shutdown()


def test_url_names_host_on_all_interfaces(web):
    web.host = "0.0.0.0"  # only the printed address changes: the socket stays on 127.0.0.1

    assert web.url == f"http://{socket.gethostname()}:{web.port}/?token={TOKEN}"


def test_rejection_log_rate_limited(caplog):
    clock = FakeClock()
    limiter = RateLimitedLog(logging.getLogger("autodrive.web.server"), interval_s=1.0, clock=clock)
    caplog.set_level(logging.WARNING, logger="autodrive.web.server")

    for _ in range(5):
        limiter.warning("client 1", "message rejected: %s", "bad angle")
    clock.advance(1.5)
    limiter.warning("client 1", "message rejected: %s", "bad angle")

    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert messages[0] == "message rejected: bad angle"
    assert "4 similar messages not logged" in messages[1]


def test_port_in_use_raises_part_error(web):
    with pytest.raises(PartError, match=f"127.0.0.1:{web.port}"):
        WebController(host="127.0.0.1", port=web.port)


def test_outputs_match_declared_channels(web):
    outputs = web.run_threaded()

    assert len(outputs) == len(WebController.OUTPUTS)
    assert WebController.OUTPUTS[1] == channels.USER_THROTTLE
    assert outputs[:6] == (0.0, 0.0, "user", False, False, 0.5)
    assert outputs[6] is None  # no command received yet


# -- control through a real Vehicle ------------------------------------------------


def test_control_reaches_vehicle_memory():
    web = WebController(host="127.0.0.1", port=0, token=TOKEN, watchdog_s=10.0)
    vehicle = Vehicle()
    vehicle.add(web, inputs=WebController.INPUTS, outputs=WebController.OUTPUTS, threaded=True)
    runner = threading.Thread(target=vehicle.start, kwargs={"rate_hz": 50}, daemon=True)
    runner.start()
    assert web.wait_ready()

    ws = connect(web)
    try:
        assert receive(ws, "hello")["role"] == "driver"
        send(ws, type="control", seq=1, angle=-0.25, throttle=0.75, mode="local_angle", recording=True, max_throttle=0.6)
        assert receive(ws, "ack")["seq"] == 1

        mem = vehicle.mem
        wait_for(lambda: mem[channels.USER_ANGLE] == -0.25, "user/angle in memory")
        assert mem[channels.USER_THROTTLE] == 0.6  # clamped to max_throttle
        assert mem[channels.USER_MODE] == "local_angle"
        assert mem[channels.RECORDING] is True
        assert mem[channels.USER_ESTOP] is False
        assert mem[channels.USER_MAX_THROTTLE] == 0.6
        assert isinstance(mem[channels.USER_TIME], float)

        send(ws, type="control", seq=2, throttle=float("nan"))
        receive(ws, "error")
        send(ws, type="control", seq=3, angle=-2.0)
        receive(ws, "error")
        loops = vehicle.loops
        wait_for(lambda: vehicle.loops >= loops + 3, "three more drive loops")
        assert mem[channels.USER_ANGLE] == -0.25
        assert mem[channels.USER_THROTTLE] == 0.6

        send(ws, type="control", seq=4, estop=True)
        wait_for(lambda: mem[channels.USER_ESTOP] is True, "user/estop in memory")
        assert mem[channels.USER_THROTTLE] == 0.0
    finally:
        ws.close()
        vehicle.stop()
        runner.join(WAIT_S)

    assert not runner.is_alive()
    with pytest.raises(OSError):
        connect(web)


def test_status_endpoint_shows_car_values(web):
    frame = np.zeros((120, 160, 3), np.uint8)
    web.run_threaded(frame, 3, 42, 19.96, 0.1234, 0.5, 0.0, 0.0, float("nan"))

    status, headers, body = http_get(web, f"/status?token={TOKEN}")

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    state = json.loads(body)
    assert state["record_count"] == 42
    assert state["loop_hz"] == 20.0
    assert state["pilot_angle"] == 0.123
    assert state["sim_speed"] is None  # NaN is not valid JSON


def test_ping_returns_pong(web):
    ws = connect(web)
    try:
        send(ws, type="ping", t=123.5)
        assert receive(ws, "pong")["t"] == 123.5
    finally:
        ws.close()


# -- validation ------------------------------------------------------------------

BAD_MESSAGES = {
    "not json": "{angle: 1}",
    "array": "[1, 2]",
    "string": '"control"',
    "oversized": json.dumps({"type": "control", "seq": 50, "angle": 0.1, "pad": "x" * 2000}),
    "nan literal": '{"type":"control","seq":51,"angle":NaN}',
    "infinity literal": '{"type":"control","seq":52,"throttle":Infinity}',
    "overflow to infinity": '{"type":"control","seq":53,"throttle":1e400}',
    "angle string": {"type": "control", "seq": 54, "angle": "0.5"},
    "angle bool": {"type": "control", "seq": 55, "angle": True},
    "angle null": {"type": "control", "seq": 56, "angle": None},
    "angle too large": {"type": "control", "seq": 57, "angle": 1.5},
    "throttle too small": {"type": "control", "seq": 58, "throttle": -1.01},
    "max throttle too large": {"type": "control", "seq": 59, "max_throttle": 1.2},
    "max throttle negative": {"type": "control", "seq": 60, "max_throttle": -0.1},
    "unknown mode": {"type": "control", "seq": 61, "mode": "turbo"},
    "mode number": {"type": "control", "seq": 62, "mode": 3},
    "recording string": {"type": "control", "seq": 63, "recording": "yes"},
    "estop number": {"type": "control", "seq": 64, "estop": 1},
    "unknown field": {"type": "control", "seq": 65, "angle": 0.1, "speed": 3},
    "unknown type": {"type": "drive", "seq": 66, "angle": 0.1},
    "missing seq": {"type": "control", "angle": 0.1},
    "negative seq": {"type": "control", "seq": -1, "angle": 0.1},
    "fractional seq": {"type": "control", "seq": 67.5, "angle": 0.1},
    "repeated seq": {"type": "control", "seq": 10, "angle": 0.1},
    "only seq": {"type": "control", "seq": 68},
    "ping without t": {"type": "ping"},
    "integer too long for a float": '{"type":"control","seq":69,"throttle":' + "9" * 400 + "}",
    "ping integer too long": '{"type":"ping","t":' + "9" * 400 + "}",
}


def test_malformed_messages_rejected(web, caplog):
    caplog.set_level(logging.WARNING, logger="autodrive.web.server")
    ws = connect(web)
    try:
        send(ws, type="control", seq=10, angle=0.2, throttle=0.3, mode="user", recording=False, max_throttle=0.5)
        assert receive(ws, "ack")["seq"] == 10
        before = web.run_threaded()

        for case, message in BAD_MESSAGES.items():
            ws.send(message if isinstance(message, str) else json.dumps(message))
            reply = receive(ws, "error")
            assert reply["error"], case
            assert web.run_threaded() == before, case

        ws.send_binary(b'{"type":"control","seq":90,"angle":0.9}')
        assert "binary" in receive(ws, "error")["error"]
        assert web.run_threaded() == before
    finally:
        ws.close()

    wait_for(lambda: web.run_threaded()[1] == 0.0, "throttle to stop after the driver left")
    assert web.run_threaded()[0] == 0.2
    assert any("rejected" in record.getMessage() for record in caplog.records)


def test_rejected_message_names_field(web):
    ws = connect(web)
    try:
        send(ws, type="control", seq=1, throttle=2)
        reply = receive(ws, "error")
    finally:
        ws.close()

    assert reply["seq"] == 1
    assert "throttle" in reply["error"]
    assert "2" in reply["error"]


def test_pilot_modes_rejected_without_pilot():
    web = start_web(has_pilot=False)
    ws = connect(web)
    try:
        hello = receive(ws, "hello")
        send(ws, type="control", seq=1, angle=0.3, throttle=0.2, mode="local")
        rejected = receive(ws, "error")
        send(ws, type="control", seq=2, mode="local_angle")
        rejected_angle = receive(ws, "error")
        send(ws, type="control", seq=3, angle=0.3, mode="user")
        accepted = receive(ws, "ack")
        status, _, body = http_get(web, f"/status?token={TOKEN}")
    finally:
        ws.close()
        web.shutdown()

    assert hello["modes"] == ["user"]
    assert rejected["seq"] == 1
    assert "no pilot model is loaded" in rejected["error"]
    assert "--model" in rejected["error"]
    assert rejected_angle["seq"] == 2
    assert accepted["seq"] == 3
    assert status == 200
    assert json.loads(body)["mode"] == "user"


def test_pilot_modes_offered_with_pilot(web):
    ws = connect(web)
    try:
        hello = receive(ws, "hello")
        send(ws, type="control", seq=1, mode="local")
        receive(ws, "ack")
    finally:
        ws.close()

    assert hello["modes"] == list(protocol.MODES)
    assert web.run_threaded()[2] == "local"


def test_start_mode_without_pilot_is_user():
    cfg = default_config(web__host="127.0.0.1", web__port=0, drive__mode="local")
    controller = create_web_controller(cfg, has_pilot=False)
    try:
        assert controller.state.modes == ("user",)
        assert controller.run_threaded()[2] == "user"
    finally:
        controller.shutdown()


def test_huge_message_closes_socket(web):
    ws = connect(web)
    try:
        ws.send("x" * (200 * 1024))
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            while True:
                if ws.recv() in ("", None):
                    raise websocket.WebSocketConnectionClosedException("closed")
    finally:
        ws.close()

    assert web.run_threaded()[1] == 0.0


# -- access --------------------------------------------------------------------------


def test_page_requires_token(web):
    assert http_get(web, "/")[0] == 403
    assert http_get(web, "/?token=wrong")[0] == 403
    assert http_get(web, "/", cookie="autodrive_token=wrong")[0] == 403

    status, headers, body = http_get(web, f"/?token={TOKEN}")
    assert status == 200
    assert f"autodrive_token={TOKEN}" in headers["Set-Cookie"]
    assert "HttpOnly" in headers["Set-Cookie"]
    assert b"/static/drive.js" in body

    assert http_get(web, "/", cookie=f"autodrive_token={TOKEN}")[0] == 200


def test_status_and_video_require_token(web):
    assert http_get(web, "/status")[0] == 403
    assert http_get(web, "/video?token=wrong")[0] == 403
    assert http_get(web, "/status", cookie=f"autodrive_token={TOKEN}")[0] == 200


def test_page_assets_served_without_token(web):
    for name in ("drive.js", "drive.css", "favicon.svg"):
        assert http_get(web, f"/static/{name}")[0] == 200, name


def test_websocket_requires_token(web):
    for token in (None, "wrong", ""):
        with pytest.raises(websocket.WebSocketBadStatusException) as raised:
            connect(web, token=token)
        assert raised.value.status_code == 403, token

    by_query = connect(web, cookie=False)
    assert receive(by_query, "hello")["role"] == "driver"
    by_query.close()


def test_websocket_foreign_origin_rejected(web):
    with pytest.raises(websocket.WebSocketBadStatusException) as raised:
        connect(web, origin="http://127.0.0.1:1")
    assert raised.value.status_code == 403

    same_origin = connect(web, origin=f"http://127.0.0.1:{web.port}")
    assert receive(same_origin, "hello")["type"] == "hello"
    same_origin.close()


def test_empty_token_opens_access_with_warning(caplog):
    caplog.set_level(logging.WARNING, logger="autodrive.parts.web")
    controller = start_web(token="")
    try:
        assert http_get(controller, "/")[0] == 200
        ws = connect(controller, token=None)
        assert receive(ws, "hello")["role"] == "driver"
        ws.close()
    finally:
        controller.shutdown()

    assert any("token is empty" in record.getMessage() for record in caplog.records)


def test_token_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    controller = start_web()
    try:
        http_get(controller, f"/?token={TOKEN}")
        http_get(controller, "/?token=wrong-guess")
    finally:
        controller.shutdown()

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert TOKEN not in text
    assert "wrong-guess" not in text


# -- watchdog ------------------------------------------------------------------------


def test_watchdog_zeroes_throttle_after_silence():
    clock = FakeClock()
    controller = start_web(watchdog_s=0.5, clock=clock)
    ws = connect(controller)
    try:
        send(ws, type="control", seq=1, angle=0.1, throttle=0.4)
        receive(ws, "ack")

        clock.advance(0.4)
        assert controller.run_threaded()[1] == 0.4

        clock.advance(0.2)
        assert controller.run_threaded()[1] == 0.0
        watchdog_state = wait_for(lambda: _watchdog_state(ws), "the watchdog state message")
        assert watchdog_state["throttle"] == 0.0

        send(ws, type="control", seq=2, throttle=0.3)
        receive(ws, "ack")
        assert controller.run_threaded()[1] == 0.3
        assert controller.server.state_message()["watchdog"] is False
    finally:
        ws.close()
        controller.shutdown()


def _watchdog_state(ws):
    message = json.loads(ws.recv())
    if message["type"] == "state" and message["state"]["watchdog"]:
        return message["state"]
    return None


def test_watchdog_with_real_clock():
    controller = start_web(watchdog_s=0.1)
    ws = connect(controller)
    try:
        send(ws, type="control", seq=1, throttle=0.5)
        receive(ws, "ack")

        state = wait_for(lambda: _watchdog_state(ws), "the watchdog to zero throttle")

        assert state["throttle"] == 0.0
        assert controller.run_threaded()[1] == 0.0
        assert ws.connected
    finally:
        ws.close()
        controller.shutdown()


def test_watchdog_ignores_zero_throttle():
    clock = FakeClock()
    controller = start_web(watchdog_s=0.5, clock=clock)
    ws = connect(controller)
    try:
        send(ws, type="control", seq=1, angle=0.7, throttle=0.0)
        receive(ws, "ack")
        clock.advance(5.0)

        assert controller.run_threaded()[:2] == (0.7, 0.0)
        assert controller.server.state_message()["watchdog"] is False
    finally:
        ws.close()
        controller.shutdown()


def test_driver_disconnect_stops_throttle(web):
    ws = connect(web)
    send(ws, type="control", seq=1, throttle=0.4)
    receive(ws, "ack")
    assert web.run_threaded()[1] == 0.4

    ws.close()

    wait_for(lambda: web.run_threaded()[1] == 0.0, "throttle to drop after disconnect")


# -- roles -------------------------------------------------------------------------------


def test_second_client_cannot_drive(web):
    driver = connect(web)
    watcher = connect(web)
    try:
        assert receive(driver, "hello")["role"] == "driver"
        assert receive(watcher, "hello")["role"] == "watcher"
        assert "another client is driving" in receive(watcher, "role")["reason"]

        send(driver, type="control", seq=1, angle=0.3, throttle=0.2)
        receive(driver, "ack")
        before = web.run_threaded()

        send(watcher, type="control", seq=1, angle=-1.0, throttle=0.5)
        assert "another client is driving" in receive(watcher, "error")["error"]
        assert web.run_threaded() == before

        send(watcher, type="take")
        assert receive(watcher, "role")["role"] == "watcher"
        send(watcher, type="control", seq=2, angle=-1.0)
        receive(watcher, "error")
        assert web.run_threaded() == before
    finally:
        driver.close()
        watcher.close()


def test_watcher_can_engage_estop(web):
    driver = connect(web)
    watcher = connect(web)
    try:
        receive(watcher, "hello")
        send(driver, type="control", seq=1, throttle=0.4)
        receive(driver, "ack")

        send(watcher, type="control", seq=1, estop=True)
        assert receive(watcher, "ack")["seq"] == 1
        assert web.run_threaded()[1] == 0.0
        assert web.run_threaded()[4] is True

        send(watcher, type="control", seq=2, estop=False)
        assert "emergency stop" in receive(watcher, "error")["error"]
        assert web.run_threaded()[4] is True

        send(driver, type="control", seq=2, estop=False)
        receive(driver, "ack")
        assert web.run_threaded()[4] is False
    finally:
        driver.close()
        watcher.close()


def test_watcher_takes_over_after_release(web):
    driver = connect(web)
    watcher = connect(web)
    try:
        receive(watcher, "hello")
        receive(watcher, "role")
        send(driver, type="control", seq=1, throttle=0.4)
        receive(driver, "ack")

        send(driver, type="release")
        assert receive(watcher, "role")["reason"].startswith("nobody is driving")
        assert web.run_threaded()[1] == 0.0

        send(watcher, type="take")
        assert receive(watcher, "role")["role"] == "driver"
        send(watcher, type="control", seq=5, throttle=-0.3)
        receive(watcher, "ack")
        assert web.run_threaded()[1] == -0.3

        send(driver, type="control", seq=2, throttle=0.4)
        receive(driver, "error")
        assert web.run_threaded()[1] == -0.3
    finally:
        driver.close()
        watcher.close()


def test_watcher_takes_over_after_driver_disconnects(web):
    driver = connect(web)
    watcher = connect(web)
    receive(watcher, "hello")
    receive(watcher, "role")
    driver.close()
    try:
        assert "driver disconnected" in receive(watcher, "role")["reason"]
        send(watcher, type="take")
        assert receive(watcher, "role")["role"] == "driver"
        send(watcher, type="control", seq=1, angle=0.5)
        receive(watcher, "ack")
        assert web.run_threaded()[0] == 0.5
    finally:
        watcher.close()


# -- video --------------------------------------------------------------------------------


class MjpegViewer(threading.Thread):
    """Reads an MJPEG stream and records each part's X-Frame-Id and JPEG bytes."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
        self.frame_ids: list[int] = []
        self.jpegs: list[bytes] = []
        self.status = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.connection.request("GET", "/video", headers={"Cookie": f"autodrive_token={TOKEN}"})
            response = self.connection.getresponse()
            self.status = response.status
            while True:
                line = response.fp.readline()
                if not line:
                    return
                if line.strip() != b"--frame":
                    continue
                headers = {}
                while True:
                    header = response.fp.readline().strip()
                    if not header:
                        break
                    name, value = header.decode().split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                jpeg = response.fp.read(int(headers["content-length"]))
                self.jpegs.append(jpeg)
                self.frame_ids.append(int(headers["x-frame-id"]))
        except (OSError, ValueError) as error:
            self.error = error

    def close(self) -> None:
        self.connection.sock.shutdown(2)
        self.connection.close()


def test_video_frames_sent_once_to_each_viewer(web):
    viewers = [MjpegViewer(web.port) for _ in range(10)]
    for viewer in viewers:
        viewer.start()
    wait_for(lambda: len(web.hub.viewers) == 10, "10 viewers to connect")

    frame_count = 6
    for number in range(1, frame_count + 1):
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:, :, 0] = 255  # pure red in RGB
        frame[0, :number] = 0
        web.run_threaded(frame, number)
        web.run_threaded(frame, number)  # the same frame offered twice is encoded once
        wait_for(lambda: all(len(v.frame_ids) >= number for v in viewers), f"frame {number} at every viewer")

    assert web.hub.encoded_count == frame_count
    for viewer in viewers:
        assert viewer.status == 200
        assert viewer.frame_ids == list(range(1, frame_count + 1))
        assert viewer.error is None

    decoded = cv2.imdecode(np.frombuffer(viewers[0].jpegs[-1], np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (120, 160, 3)
    blue, green, red = decoded[60, 80]
    assert red > 200  # RGB frames are converted to BGR before encoding
    assert blue < 50
    assert green < 50

    for viewer in viewers:
        viewer.close()
    wait_for(lambda: len(web.hub.viewers) == 0, "viewers to disconnect")
    web.run_threaded(np.zeros((120, 160, 3), np.uint8), frame_count + 1)
    assert web.hub.encoded_count == frame_count  # no viewers: nothing encoded


def test_video_frame_without_number_deduplicated(web):
    viewer = MjpegViewer(web.port)
    viewer.start()
    wait_for(lambda: len(web.hub.viewers) == 1, "viewer to connect")
    first = np.full((120, 160, 3), 40, np.uint8)
    second = np.full((120, 160, 3), 200, np.uint8)

    web.run_threaded(first)
    wait_for(lambda: len(viewer.frame_ids) == 1, "first frame")
    web.run_threaded(first)
    web.run_threaded(second)
    wait_for(lambda: len(viewer.frame_ids) == 2, "second frame")
    viewer.close()

    assert viewer.frame_ids == [1, 2]
    assert web.hub.encoded_count == 2
