"""A recorder killed with SIGKILL mid-recording loses nothing it had flushed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from autodrive.tub import TubWriter, open_tub
from autodrive.tub.record import DUPLICATE_INDEX
from autodrive.tub.v2 import read_manifest, scan_catalog

REPO = Path(__file__).resolve().parents[1]
SHARED_TUB = REPO.parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"
INPUTS = ["cam/image_array", "user/angle", "user/throttle", "user/mode"]
TYPES = ["image_array", "float", "float", "str"]
KILL_AFTER_RECORDS = 350

# The child drives a real Vehicle with the real Recorder part, feeding it
# frames of the shared tub, and prints the writer's flushed record count
# after every loop.
CHILD = r"""
import sys
from autodrive.parts.recorder import Recorder
from autodrive.tub import open_tub
from autodrive.vehicle import Vehicle

source = open_tub(sys.argv[2])
frames = [(source.load_image(record), record.values["user/angle"], record.values["user/throttle"])
          for record in list(source.records())[:50]]


class Frames:
    def __init__(self):
        self.number = 0

    def run(self):
        image, angle, throttle = frames[self.number % len(frames)]
        self.number += 1
        return image, angle, throttle, "user", True


class PrintCount:
    def run(self, count):
        print(count, flush=True)


recorder = Recorder(sys.argv[1], max_catalog_len=100, fsync_interval_s=60.0)
vehicle = Vehicle()
vehicle.add(Frames(), outputs=["cam/image_array", "user/angle", "user/throttle", "user/mode", "recording"])
vehicle.add(recorder, inputs=recorder.vehicle_inputs, outputs=["recorder/count"])
vehicle.add(PrintCount(), inputs=["recorder/count"])
vehicle.start(rate_hz=1000)
"""


def record_until_killed(tub_path: Path) -> int:
    """Run the child until it reports KILL_AFTER_RECORDS, SIGKILL it, return its last count."""
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tub_path), str(SHARED_TUB)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    last_count = 0
    try:
        for line in child.stdout:
            last_count = int(line)
            if last_count >= KILL_AFTER_RECORDS:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        error_output = child.stderr.read()
    assert child.returncode == -signal.SIGKILL, error_output[-3000:]
    return last_count


def catalog_line_lengths(tub_path: Path, name: str) -> tuple[list[int], list[int] | None]:
    scan = scan_catalog(tub_path / name)
    return scan.line_lengths, scan.manifest_line_lengths


def test_sigkill_keeps_flushed_records(tmp_path):
    tub_path = tmp_path / "data"
    flushed = record_until_killed(tub_path)

    tub = open_tub(tub_path)
    indexes = [record.index for record in tub.records()]

    assert flushed >= KILL_AFTER_RECORDS
    assert len(tub) >= flushed
    assert indexes == list(range(len(indexes)))
    assert tub.unusable == {}
    assert {record.session_id for record in tub.records()} == {tub.sessions[0]}
    assert tub.load_image(tub.record(indexes[-1])).shape == (120, 160, 3)


def test_sigkill_then_new_session(tmp_path):
    tub_path = tmp_path / "data"
    record_until_killed(tub_path)
    before = len(open_tub(tub_path))

    image = np.zeros((120, 160, 3), dtype=np.uint8)
    with TubWriter(tub_path, INPUTS, TYPES, max_catalog_len=100) as writer:
        for step in range(10):
            writer.write({"cam/image_array": image, "user/angle": 0.5, "user/throttle": 0.25,
                          "user/mode": "user"}, block=True)

    tub = open_tub(tub_path)
    manifest = read_manifest(tub_path)
    records = list(tub.records())
    new_session = [record for record in records if record.session_id == writer.session_id]

    assert [record.index for record in records] == list(range(before + 10))
    assert [record.index for record in new_session] == list(range(before, before + 10))
    assert tub.problems[DUPLICATE_INDEX] == 0
    assert len(tub.sessions) == 2
    assert tub.sessions[1] == writer.session_id != tub.sessions[0]
    assert manifest.current_index == before + 10
    assert manifest.paths == [f"catalog_{number}.catalog" for number in range((before + 9) // 100 + 1)]
    for name in manifest.paths:
        found, stored = catalog_line_lengths(tub_path, name)
        assert stored == found, name


def test_sigkill_manifests_repaired_on_open(tmp_path):
    tub_path = tmp_path / "data"
    record_until_killed(tub_path)
    count = len(open_tub(tub_path))

    TubWriter(tub_path, INPUTS, TYPES, max_catalog_len=100).close()

    manifest = read_manifest(tub_path)
    assert manifest.current_index == count
    assert sum(len(catalog_line_lengths(tub_path, name)[0]) for name in manifest.paths) == count
    for name in manifest.paths:
        found, stored = catalog_line_lengths(tub_path, name)
        assert stored == found, name
    assert json.loads((tub_path / "manifest.json").read_text().splitlines()[3])["sessions"]["last_id"] == 0
