// autodrive driving page: joystick, keyboard, gamepad and tilt input sent over the control websocket.
// The message format is described in autodrive/web/protocol.py.
"use strict";

(function () {
  const SEND_INTERVAL_MS = 100;   // the server's watchdog expects a control message at least this often
  const PING_INTERVAL_MS = 1000;
  const RECONNECT_MS = 1000;
  const GAMEPAD_DEADZONE = 0.08;
  const TILT_FULL_DEG = 30;       // phone tilt that gives full steering

  const $ = (id) => document.getElementById(id);
  const ui = {
    link: $("link"), role: $("role"), loopHz: $("loop-hz"), latency: $("latency"), banner: $("banner"),
    video: $("video"), videoNote: $("video-note"), angle: $("angle"), throttle: $("throttle"),
    angleBar: $("angle-bar"), throttleBar: $("throttle-bar"), pilot: $("pilot"),
    record: $("record"), recordLabel: $("record-label"), recordCount: $("record-count"),
    maxThrottle: $("max-throttle"), maxValue: $("max-value"), pad: $("pad"), knob: $("knob"),
    take: $("take"), release: $("release"), tilt: $("tilt"), gamepad: $("gamepad"), estop: $("estop"),
    modes: Array.from(document.querySelectorAll(".mode")), modeHint: $("mode-hint"),
  };

  // Drop the token from the address bar: the server keeps it in a cookie.
  if (location.search.includes("token=")) {
    history.replaceState(null, "", location.pathname);
  }

  const page = {
    socket: null, connected: false, role: null, seq: 0,
    mode: "user", recording: false, maxThrottle: 0.5, estop: false, server: {},
    pad: { active: false, pointer: null, x: 0, y: 0 },
    keys: new Set(),
    tilt: { enabled: false, angle: 0 },
    gamepadIndex: null,
    videoSerial: 0,
  };

  const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

  // -- connection ------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws");
    page.socket = socket;
    setLink("connecting", "pill-wait");

    socket.onopen = () => {
      page.connected = true;
      page.seq = 0;
      setLink("connected", "pill-ok");
      restartVideo();
    };
    socket.onmessage = (event) => handleMessage(JSON.parse(event.data));
    socket.onclose = () => {
      page.connected = false;
      page.role = null;
      releaseInputs();
      setLink("disconnected", "pill-bad");
      showRole();
      showBanner("No link to the car: the car stops on its own. Reconnecting…", "bad");
      setTimeout(connect, RECONNECT_MS);
    };
  }

  function send(message) {
    if (page.socket && page.socket.readyState === WebSocket.OPEN) {
      page.socket.send(JSON.stringify(message));
    }
  }

  function sendControl(fields) {
    page.seq += 1;
    send(Object.assign({ type: "control", seq: page.seq }, fields));
  }

  function handleMessage(message) {
    switch (message.type) {
      case "hello":
        page.role = message.role;
        offerModes(message.modes);
        adoptServerState(message.state);
        showRole();
        showState(message.state);
        hideBanner();
        break;
      case "role":
        page.role = message.role;
        showRole(message.reason);
        break;
      case "state":
        if (page.role !== "driver") adoptServerState(message.state);
        showState(message.state);
        break;
      case "pong":
        ui.latency.textContent = Math.round(performance.now() - message.t);
        break;
      case "error":
        showBanner("Car rejected a command: " + message.error, "bad");
        break;
      case "ack":
        break;
    }
  }

  function adoptServerState(state) {
    page.mode = state.mode;
    page.recording = state.recording;
    page.maxThrottle = state.max_throttle;
    page.estop = state.estop;
    ui.maxThrottle.value = Math.round(state.max_throttle * 100);
    showControls();
  }

  // -- input -----------------------------------------------------------------

  // Returns [angle, throttle], each -1..1, from the first input in use.
  function readInput() {
    if (page.pad.active) {
      const angle = page.tilt.enabled ? page.tilt.angle : page.pad.x;
      return [angle, page.pad.y];
    }
    if (page.keys.size > 0) {
      const k = page.keys;
      const angle = (k.has("right") ? 1 : 0) - (k.has("left") ? 1 : 0);
      const throttle = (k.has("up") ? 1 : 0) - (k.has("down") ? 1 : 0);
      return [page.tilt.enabled && angle === 0 ? page.tilt.angle : angle, throttle];
    }
    const pad = readGamepad();
    if (pad) return pad;
    return [page.tilt.enabled ? page.tilt.angle : 0, 0];
  }

  function readGamepad() {
    if (page.gamepadIndex === null || !navigator.getGamepads) return null;
    const gamepad = navigator.getGamepads()[page.gamepadIndex];
    if (!gamepad) return null;
    const dead = (value) => (Math.abs(value) < GAMEPAD_DEADZONE ? 0 : value);
    const angle = dead(gamepad.axes[0] || 0);
    let throttle = -dead(gamepad.axes[1] || 0);
    // Standard mapping: right trigger (7) forward, left trigger (6) reverse.
    const forward = gamepad.buttons[7] ? gamepad.buttons[7].value : 0;
    const reverse = gamepad.buttons[6] ? gamepad.buttons[6].value : 0;
    if (forward > GAMEPAD_DEADZONE || reverse > GAMEPAD_DEADZONE) throttle = forward - reverse;
    if (gamepad.buttons[1] && gamepad.buttons[1].pressed && !page.estop) engageEstop();
    if (angle === 0 && throttle === 0) return null;
    return [clamp(angle, -1, 1), clamp(throttle, -1, 1)];
  }

  function releaseInputs() {
    page.pad.active = false;
    page.pad.x = 0;
    page.pad.y = 0;
    page.keys.clear();
    placeKnob(0, 0);
  }

  const KEYS = {
    ArrowUp: "up", KeyW: "up", ArrowDown: "down", KeyS: "down",
    ArrowLeft: "left", KeyA: "left", ArrowRight: "right", KeyD: "right",
  };

  window.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.type !== "range") return;
    if (event.code === "Space") {
      event.preventDefault();
      if (!event.repeat) engageEstop();
      return;
    }
    const key = KEYS[event.code];
    if (key) {
      event.preventDefault();
      page.keys.add(key);
      tick();
    }
  });
  window.addEventListener("keyup", (event) => {
    const key = KEYS[event.code];
    if (key) {
      page.keys.delete(key);
      tick();
    }
  });
  window.addEventListener("blur", () => { releaseInputs(); tick(); });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) { releaseInputs(); tick(); }
  });

  function padPosition(event) {
    const box = ui.pad.getBoundingClientRect();
    const radius = Math.min(box.width, box.height) / 2 * 0.8;
    let x = (event.clientX - (box.left + box.width / 2)) / radius;
    let y = -(event.clientY - (box.top + box.height / 2)) / radius;
    return [clamp(x, -1, 1), clamp(y, -1, 1)];
  }

  function placeKnob(x, y) {
    const box = ui.pad.getBoundingClientRect();
    const radius = Math.min(box.width, box.height) / 2 * 0.8;
    ui.knob.style.transform = `translate(-50%, -50%) translate(${x * radius}px, ${-y * radius}px)`;
  }

  ui.pad.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    ui.pad.setPointerCapture(event.pointerId);
    page.pad.active = true;
    page.pad.pointer = event.pointerId;
    [page.pad.x, page.pad.y] = padPosition(event);
    placeKnob(page.pad.x, page.pad.y);
    tick();
  });
  ui.pad.addEventListener("pointermove", (event) => {
    if (!page.pad.active || event.pointerId !== page.pad.pointer) return;
    [page.pad.x, page.pad.y] = padPosition(event);
    placeKnob(page.pad.x, page.pad.y);
  });
  for (const name of ["pointerup", "pointercancel", "lostpointercapture"]) {
    ui.pad.addEventListener(name, (event) => {
      if (event.pointerId !== page.pad.pointer) return;
      page.pad.active = false;
      page.pad.x = 0;
      page.pad.y = 0;
      placeKnob(0, 0);
      tick();
    });
  }

  window.addEventListener("gamepadconnected", (event) => {
    page.gamepadIndex = event.gamepad.index;
    ui.gamepad.textContent = "gamepad: " + event.gamepad.id.slice(0, 24);
  });
  window.addEventListener("gamepaddisconnected", (event) => {
    if (event.gamepad.index === page.gamepadIndex) {
      page.gamepadIndex = null;
      ui.gamepad.textContent = "";
      tick();
    }
  });

  function onOrientation(event) {
    if (event.gamma === null) return;
    page.tilt.angle = clamp(event.gamma / TILT_FULL_DEG, -1, 1);
  }

  ui.tilt.addEventListener("change", async () => {
    if (!ui.tilt.checked) {
      page.tilt.enabled = false;
      window.removeEventListener("deviceorientation", onOrientation);
      return;
    }
    try {
      if (typeof DeviceOrientationEvent !== "undefined" && DeviceOrientationEvent.requestPermission) {
        const answer = await DeviceOrientationEvent.requestPermission();
        if (answer !== "granted") throw new Error("permission " + answer);
      }
      window.addEventListener("deviceorientation", onOrientation);
      page.tilt.enabled = true;
      page.tilt.angle = 0;
    } catch (error) {
      ui.tilt.checked = false;
      showBanner("Tilt steering is not available in this browser: " + error.message, "bad");
    }
  });

  // -- controls --------------------------------------------------------------

  // Disables the mode buttons the car rejects: the pilot modes when no pilot model is loaded.
  function offerModes(available) {
    for (const button of ui.modes) {
      const offered = available.includes(button.dataset.mode);
      button.disabled = !offered;
      button.title = offered ? "" : "No pilot model is loaded: start with --model";
    }
    ui.modeHint.hidden = ui.modes.every((button) => !button.disabled);
  }

  for (const button of ui.modes) {
    button.addEventListener("click", () => {
      if (page.role !== "driver" || button.disabled) return;
      page.mode = button.dataset.mode;
      showControls();
      sendControl({ mode: page.mode });
    });
  }

  ui.record.addEventListener("click", () => {
    if (page.role !== "driver") return;
    page.recording = !page.recording;
    showControls();
    sendControl({ recording: page.recording });
  });

  ui.maxThrottle.addEventListener("input", () => {
    page.maxThrottle = Number(ui.maxThrottle.value) / 100;
    showControls();
    if (page.role === "driver") sendControl({ max_throttle: page.maxThrottle });
  });

  function engageEstop() {
    page.estop = true;
    releaseInputs();
    showControls();
    sendControl({ estop: true });
  }

  ui.estop.addEventListener("click", () => {
    if (!page.estop) {
      engageEstop();
    } else if (page.role === "driver") {
      page.estop = false;
      showControls();
      sendControl({ estop: false });
    } else {
      showBanner("Only the driver can release the emergency stop.", "bad");
    }
  });

  ui.take.addEventListener("click", () => send({ type: "take" }));
  ui.release.addEventListener("click", () => send({ type: "release" }));

  // -- sending ---------------------------------------------------------------

  // Sends the driver's full state; runs every SEND_INTERVAL_MS and on every input change.
  function tick() {
    if (!page.connected || page.role !== "driver") return;
    const [angle, stick] = readInput();
    const throttle = page.estop ? 0 : stick * page.maxThrottle;
    sendControl({
      angle: Number(angle.toFixed(3)),
      throttle: Number(throttle.toFixed(3)),
      mode: page.mode,
      recording: page.recording,
      max_throttle: page.maxThrottle,
    });
  }

  setInterval(tick, SEND_INTERVAL_MS);
  setInterval(() => send({ type: "ping", t: performance.now() }), PING_INTERVAL_MS);

  // -- display ---------------------------------------------------------------

  function setLink(text, kind) {
    ui.link.textContent = text;
    ui.link.className = "pill " + kind;
  }

  function showRole(reason) {
    const driving = page.role === "driver";
    let label = "—";
    if (driving) label = "driving";
    else if (page.role === "watcher") label = "watching";
    ui.role.textContent = label;
    ui.role.className = "pill " + (driving ? "pill-ok" : "pill-wait");
    ui.take.hidden = page.role !== "watcher";
    ui.release.hidden = !driving;
    document.body.classList.toggle("watching", page.role === "watcher");
    if (reason && page.role === "watcher") showBanner(reason, "info");
    else if (driving) hideBanner();
  }

  function showControls() {
    for (const button of ui.modes) {
      button.setAttribute("aria-checked", String(button.dataset.mode === page.mode));
    }
    ui.record.setAttribute("aria-pressed", String(page.recording));
    ui.recordLabel.textContent = page.recording ? "Recording" : "Record";
    ui.maxValue.textContent = Math.round(page.maxThrottle * 100) + " %";
    ui.estop.setAttribute("aria-pressed", String(page.estop));
    ui.estop.classList.toggle("latched", page.estop);
    ui.estop.textContent = page.estop ? "STOPPED · tap to release" : "STOP";
  }

  function showBar(bar, value) {
    const width = Math.abs(value) * 50;
    bar.style.width = width + "%";
    bar.style.left = (value < 0 ? 50 - width : 50) + "%";
  }

  const fixed = (value, digits) => (typeof value === "number" ? value.toFixed(digits) : "—");

  function showState(state) {
    page.server = state;
    if (page.role === "driver") {
      // The server stores the emergency-stop latch, and a watcher may have engaged it.
      page.estop = state.estop;
    }
    showControls();
    ui.angle.textContent = fixed(state.angle, 2);
    ui.throttle.textContent = fixed(state.throttle, 2);
    showBar(ui.angleBar, state.angle);
    showBar(ui.throttleBar, state.throttle);
    ui.loopHz.textContent = fixed(state.loop_hz, 0);
    ui.recordCount.textContent = state.record_count === null ? "0" : String(state.record_count);
    const parts = [];
    if (typeof state.pilot_angle === "number" || typeof state.pilot_throttle === "number") {
      parts.push("pilot " + fixed(state.pilot_angle, 2) + " / " + fixed(state.pilot_throttle, 2));
    }
    if (typeof state.sim_speed === "number") parts.push(state.sim_speed.toFixed(1) + " m/s");
    ui.pilot.textContent = parts.join(" · ");
    ui.pilot.hidden = parts.length === 0;
    ui.videoNote.hidden = ui.video.naturalWidth > 0;
    if (state.watchdog) {
      showBanner("Link too slow: the car set throttle to zero.", "bad");
    } else if (state.estop) {
      showBanner("Emergency stop latched. Release it to drive again.", "bad");
    } else if (page.role === "driver" && page.connected && ui.banner.dataset.kind === "bad") {
      hideBanner();
    }
  }

  function showBanner(text, kind) {
    ui.banner.textContent = text;
    ui.banner.dataset.kind = kind;
    ui.banner.hidden = false;
  }

  function hideBanner() {
    ui.banner.hidden = true;
    ui.banner.dataset.kind = "";
  }

  function restartVideo() {
    page.videoSerial += 1;
    ui.video.src = "/video?n=" + page.videoSerial;
  }
  // Chromium fires no load event for each MJPEG part, so the state messages check the image size too.
  ui.video.addEventListener("load", () => { ui.videoNote.hidden = true; });
  ui.video.addEventListener("error", () => { ui.videoNote.textContent = "no video"; });

  showControls();
  connect();
})();
