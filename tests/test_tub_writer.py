"""TubWriter: the Tub v2 files it writes, sessions, drops and bad values."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from autodrive.tub import TubError, TubWriter, open_tub
from autodrive.tub.record import UNUSED_INPUT
from autodrive.tub.v2 import read_manifest, scan_catalog
from autodrive.tub.writer import NON_FINITE_STORED

INPUTS = ["cam/image_array", "user/angle", "user/throttle", "user/mode"]
TYPES = ["image_array", "float", "float", "str"]
SHARED_TUB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"


def frame(value: int = 0, size: tuple[int, int] = (120, 160)) -> np.ndarray:
    return np.full((*size, 3), value, dtype=np.uint8)


def values(angle: float = 0.0, throttle: float = 0.5, image: np.ndarray | None = None) -> dict:
    return {"cam/image_array": frame() if image is None else image, "user/angle": angle,
            "user/throttle": throttle, "user/mode": "user"}


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_writer_files_match_tub_v2(tmp_path):
    tub_path = tmp_path / "tub"
    with TubWriter(tub_path, INPUTS, TYPES, {"car": "red"}) as writer:
        writer.write(values(angle=-0.25, throttle=np.float32(0.5)), block=True)
        writer.write(values(angle=1, throttle=0.75), block=True)

    manifest_lines = (tub_path / "manifest.json").read_text().splitlines()
    catalog = (tub_path / "catalog_0.catalog").read_text().splitlines(keepends=True)
    first = json.loads(catalog[0])
    catalog_manifest = json.loads((tub_path / "catalog_0.catalog_manifest").read_text())

    assert len(manifest_lines) == 5
    assert json.loads(manifest_lines[0]) == INPUTS
    assert json.loads(manifest_lines[1]) == TYPES
    assert json.loads(manifest_lines[2]) == {"car": "red"}
    assert json.loads(manifest_lines[4]) == {"paths": ["catalog_0.catalog"], "current_index": 2,
                                             "max_len": 1000, "deleted_indexes": []}
    assert list(first) == sorted(first)
    assert first["cam/image_array"] == "0_cam_image_array_.jpg"
    assert first["_index"] == 0
    assert first["_session_id"] == writer.session_id
    assert first["user/angle"] == -0.25
    assert json.loads(catalog[1])["user/angle"] == 1.0
    assert catalog_manifest["line_lengths"] == [len(line.encode()) for line in catalog]
    assert catalog_manifest["start_index"] == 0
    assert catalog_manifest["path"] == "catalog_0.catalog_manifest"
    assert (tub_path / "images" / "1_cam_image_array_.jpg").is_file()


def test_writer_records_read_back(tmp_path):
    source = open_tub(SHARED_TUB)
    originals = list(source.records())[:40]
    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
        for record in originals:
            writer.write(dict(record.values, **{"cam/image_array": source.load_image(record)}), block=True)

    tub = open_tub(tmp_path / "tub")
    copies = list(tub.records())

    assert len(tub) == 40
    assert tub.problems == {}
    assert [copy.values["user/angle"] for copy in copies] == [record.values["user/angle"] for record in originals]
    difference = np.abs(tub.load_image(copies[7]).astype(int) - source.load_image(originals[7]).astype(int))
    assert difference.mean() < 4


def test_writer_keeps_rgb_order(tmp_path):
    red = frame()
    red[..., 0] = 255
    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
        writer.write(values(image=red), block=True)

    tub = open_tub(tmp_path / "tub")
    image = tub.load_image(tub.record(0))

    assert image[..., 0].mean() > 240
    assert image[..., 2].mean() < 15


def test_writer_1000_records_per_catalog(tmp_path):
    small = frame(size=(8, 8))
    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
        for number in range(2005):
            writer.write(values(angle=number / 2005, image=small), block=True)

    manifest = read_manifest(tmp_path / "tub")
    scans = [scan_catalog(tmp_path / "tub" / name) for name in manifest.paths]

    assert manifest.paths == ["catalog_0.catalog", "catalog_1.catalog", "catalog_2.catalog"]
    assert [len(scan.records) for scan in scans] == [1000, 1000, 5]
    assert [scan.start_index for scan in scans] == [0, 1000, 2000]
    assert all(scan.manifest_agrees for scan in scans)
    assert manifest.current_index == 2005
    assert open_tub(tmp_path / "tub").indexes == list(range(2005))


def test_writer_stores_nan_as_null(tmp_path):
    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
        assert writer.write(values(angle=float("nan"), throttle=float("inf")), block=True)
        writer.write(values(angle=0.5), block=True)

    tub = open_tub(tmp_path / "tub")

    assert writer.problems[NON_FINITE_STORED] == 2
    assert writer.count == 2
    assert tub.record(0).values["user/angle"] is None
    assert tub.record(0).values["user/throttle"] is None
    assert tub.record(1).values["user/angle"] == 0.5


def test_writer_drops_when_full(tmp_path):
    writer = TubWriter(tmp_path / "tub", INPUTS, TYPES, queue_size=4, workers=2)
    # Holding the commit lock stalls the workers, as a slow disk would.
    with writer._commit_lock:
        accepted = [writer.write(values(angle=number / 20)) for number in range(20)]
    writer.close()

    tub = open_tub(tmp_path / "tub")

    assert accepted.count(False) >= 20 - 4 - 2
    assert writer.dropped == accepted.count(False)
    assert writer.count == accepted.count(True)
    assert tub.indexes == list(range(writer.count))
    assert [record.values["user/angle"] for record in tub.records()] == \
        [number / 20 for number, ok in enumerate(accepted) if ok]


def test_writer_registers_session_before_close(tmp_path):
    writer = TubWriter(tmp_path / "tub", INPUTS, TYPES)
    try:
        writer.write(values())
        wait_for(lambda: writer.count == 1)
        sessions = read_manifest(tmp_path / "tub").sessions
    finally:
        writer.close()

    assert sessions["last_full_id"] == writer.session_id
    assert sessions["all_full_ids"] == [writer.session_id]
    assert sessions["last_id"] == 0


def test_writer_sessions_continue(tmp_path):
    for session in range(3):
        with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
            for _ in range(4):
                writer.write(values(angle=session / 4), block=True)

    tub = open_tub(tmp_path / "tub")

    assert tub.indexes == list(range(12))
    assert len(tub.sessions) == 3
    assert len(set(tub.sessions)) == 3
    assert [record.session_id for record in tub.records()] == [session for session in tub.sessions for _ in range(4)]
    assert tub.sessions[2].endswith("_2")


def test_writer_session_after_unregistered_records(tmp_path):
    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
        writer.write(values(), block=True)
    lines = (tmp_path / "tub" / "manifest.json").read_text().splitlines()
    lines[3] = json.dumps({"created_at": 1.0})
    (tmp_path / "tub" / "manifest.json").write_text("\n".join(lines) + "\n")

    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as second:
        second.write(values(), block=True)

    assert second.session_id != writer.session_id
    assert second.session_id.endswith("_1")


def test_writer_timestamp_at_write(tmp_path):
    before_ms = time.time() * 1000
    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
        writer.write(values())
        after_ms = time.time() * 1000

    stamp = open_tub(tmp_path / "tub").record(0).timestamp_ms

    assert before_ms - 1 <= stamp <= after_ms + 1


def test_writer_copies_jpeg_bytes(tmp_path):
    original = (SHARED_TUB / "images" / "5_cam_image_array_.jpg").read_bytes()
    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
        writer.write(dict(values(), **{"cam/image_array": original}), block=True)

    assert (tmp_path / "tub" / "images" / "0_cam_image_array_.jpg").read_bytes() == original


def test_writer_copies_image_array(tmp_path):
    image = frame(200)
    writer = TubWriter(tmp_path / "tub", INPUTS, TYPES, copy_images=True)
    with writer._commit_lock:
        writer.write(values(image=image))
        image[:] = 0
    writer.close()

    tub = open_tub(tmp_path / "tub")

    assert tub.load_image(tub.record(0)).mean() > 190


def test_writer_fsync_every_record(tmp_path):
    with TubWriter(tmp_path / "tub", INPUTS, TYPES, fsync_interval_s=0.0) as writer:
        for _ in range(5):
            writer.write(values(), block=True)

    assert len(open_tub(tmp_path / "tub")) == 5


def test_writer_adds_new_input(tmp_path):
    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
        writer.write(values(), block=True)
    with TubWriter(tmp_path / "tub", INPUTS + ["pilot/angle"], TYPES + ["float"]) as writer:
        writer.write(dict(values(), **{"pilot/angle": 0.3}), block=True)

    tub = open_tub(tmp_path / "tub")

    assert tub.inputs == INPUTS + ["pilot/angle"]
    assert tub.record(1).values["pilot/angle"] == 0.3
    assert "pilot/angle" not in tub.record(0).values


def test_writer_new_input_waits_for_record(tmp_path):
    tub_path = tmp_path / "tub"
    with TubWriter(tub_path, INPUTS, TYPES) as writer:
        writer.write(values(), block=True)
    manifest_before = (tub_path / "manifest.json").read_text()

    writer = TubWriter(tub_path, INPUTS + ["pilot/angle"], TYPES + ["float"])
    writer.close()

    assert (tub_path / "manifest.json").read_text() == manifest_before
    assert UNUSED_INPUT not in open_tub(tub_path).problems

    with TubWriter(tub_path, INPUTS + ["pilot/angle"], TYPES + ["float"]) as writer:
        writer.write(dict(values(), **{"pilot/angle": -0.4}), block=True)
        wait_for(lambda: writer.count == 1)
        assert read_manifest(tub_path).inputs == INPUTS + ["pilot/angle"]

    tub = open_tub(tub_path)
    assert tub.types == TYPES + ["float"]
    assert tub.record(1).values["pilot/angle"] == -0.4


def test_writer_rejects_changed_type(tmp_path):
    TubWriter(tmp_path / "tub", INPUTS, TYPES).close()

    with pytest.raises(TubError, match="user/mode"):
        TubWriter(tmp_path / "tub", INPUTS, TYPES[:3] + ["float"])


def test_writer_rejects_non_tub_folder(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"x")

    with pytest.raises(TubError, match="not empty"):
        TubWriter(tmp_path / "photos", INPUTS, TYPES)


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(TubError, match="one type per input"):
        TubWriter(tmp_path / "a", INPUTS, TYPES[:2])
    with pytest.raises(TubError, match="unknown input types"):
        TubWriter(tmp_path / "b", INPUTS, TYPES[:3] + ["text"])
    with pytest.raises(TubError, match="jpeg_quality"):
        TubWriter(tmp_path / "c", INPUTS, TYPES, jpeg_quality=5)


def test_writer_closed_rejects_write(tmp_path):
    writer = TubWriter(tmp_path / "tub", INPUTS, TYPES)
    writer.close()
    writer.close()

    with pytest.raises(TubError, match="closed"):
        writer.write(values())


def test_writer_bad_image_value_kept_going(tmp_path):
    with TubWriter(tmp_path / "tub", INPUTS, TYPES) as writer:
        writer.write(dict(values(), **{"cam/image_array": "not an image"}), block=True)
        writer.write(values(angle=0.5), block=True)

    tub = open_tub(tmp_path / "tub")

    assert writer.count == 2
    assert tub.indexes == [1]
    assert 0 in tub.unusable


def test_writer_gray16_png(tmp_path):
    depth = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    with TubWriter(tmp_path / "tub", ["cam/depth"], ["gray16_array"]) as writer:
        writer.write({"cam/depth": depth}, block=True)

    stored = cv2.imread(str(tmp_path / "tub" / "images" / "0_cam_depth_.png"), cv2.IMREAD_UNCHANGED)

    assert np.array_equal(stored, depth)



@pytest.fixture
def fsynced_paths(monkeypatch):
    """Record the path of every file the tub writer forces to disk."""
    import os as os_module

    import autodrive.tub.writer as writer_module

    paths: list[str] = []
    real_fsync = os_module.fsync

    def recording_fsync(descriptor):
        paths.append(os_module.readlink(f"/proc/self/fd/{descriptor}"))
        return real_fsync(descriptor)

    monkeypatch.setattr(writer_module.os, "fsync", recording_fsync)
    return paths


def test_writer_forces_images_before_catalog(tmp_path, fsynced_paths):
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    writer = TubWriter(tmp_path / "tub", ["cam/image_array", "user/angle"], ["image_array", "float"])

    for number in range(5):
        assert writer.write({"cam/image_array": image, "user/angle": number / 10}, block=True)
    writer.close()

    image_syncs = [index for index, path in enumerate(fsynced_paths) if path.endswith(".jpg")]
    catalog_syncs = [index for index, path in enumerate(fsynced_paths) if path.endswith(".catalog")]
    assert len(image_syncs) == 5
    assert catalog_syncs, "the catalog was never forced to disk"
    assert max(image_syncs) < max(catalog_syncs)


def test_writer_sync_images_off(tmp_path, fsynced_paths):
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    writer = TubWriter(tmp_path / "tub", ["cam/image_array"], ["image_array"], sync_images=False)

    assert writer.write({"cam/image_array": image}, block=True)
    writer.close()

    assert not [path for path in fsynced_paths if path.endswith(".jpg")]
    assert [path for path in fsynced_paths if path.endswith(".catalog")]
