"""`autodrive tub`: info, delete, restore, check and convert on real tub files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from autodrive.cli import cli
from autodrive.tub import FORMAT_V2, TubWriter, open_tub
from autodrive.tub.record import IMAGE_MISSING, LINE_LENGTHS_WRONG, TRUNCATED_LINE
from autodrive.tub.tools import parse_ranges, summarize
from tests.test_tub_reader import make_legacy_tub

REPO = Path(__file__).resolve().parents[1]
SHARED_TUB = REPO.parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"


def invoke(*args: str):
    return CliRunner().invoke(cli, ["tub", *args], catch_exceptions=False)


@pytest.fixture
def tub_copy(tmp_path: Path) -> Path:
    target = tmp_path / "tub"
    shutil.copytree(SHARED_TUB, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def test_info_real_tub_no_frame_rate():
    result = invoke("info", str(SHARED_TUB))

    assert result.exit_code == 0
    assert "1000 usable" in result.output
    assert "not capture times" in result.output
    assert "Hz" not in result.output.split("not capture times")[1]
    assert "frame rate 3" not in result.output
    assert "user/angle:" in result.output
    assert "record without _session_id (1000)" in result.output


def test_info_real_frame_rate(tmp_path):
    with TubWriter(tmp_path / "tub", ["user/angle"], ["float"]) as writer:
        for number in range(41):
            writer.write({"user/angle": 0.0}, timestamp_ms=1_700_000_000_000 + 50 * number, block=True)
        for number in range(20):
            writer.write({"user/angle": 0.0}, timestamp_ms=1_700_000_100_000 + 50 * number, block=True)

    summary = summarize(open_tub(tmp_path / "tub"))
    result = invoke("info", str(tmp_path / "tub"))

    assert summary.frame_rate_hz == pytest.approx(20.0)
    assert summary.duration_s == pytest.approx(3.0 - 0.05)
    assert summary.timestamp_note is None
    assert "frame rate 20.0 Hz" in result.output
    assert "sessions: 1" in result.output


def test_delete_and_restore_ranges(tub_copy):
    deleted = invoke("delete", str(tub_copy), "100:250,400")
    restored = invoke("restore", str(tub_copy), "100:110")
    tub = open_tub(tub_copy)

    assert deleted.exit_code == 0
    assert "marked 151 records deleted" in deleted.output
    assert restored.exit_code == 0
    assert tub.deleted_indexes == set(range(110, 250)) | {400}
    assert len(tub) == 859


def test_delete_bad_range_message(tub_copy):
    result = subprocess.run([sys.executable, "-m", "autodrive", "tub", "delete", str(tub_copy), "100-200"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)

    assert result.returncode == 1
    assert "invalid range '100-200'" in result.stderr
    assert "Traceback" not in result.stderr
    assert open_tub(tub_copy).deleted_indexes == set()


def test_parse_ranges_forms():
    assert parse_ranges("3:6,9", end=20) == {3, 4, 5, 9}
    assert parse_ranges("17:", end=20) == {17, 18, 19}
    assert parse_ranges(":2", end=20) == {0, 1}


def test_info_empty_folder_says_no_recordings(tmp_path):
    result = subprocess.run([sys.executable, "-m", "autodrive", "tub", "info", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)

    assert result.returncode == 1
    assert "no recordings yet" in result.stderr
    assert "autodrive sim record" in result.stderr


def test_info_not_a_tub_message(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")

    result = subprocess.run([sys.executable, "-m", "autodrive", "tub", "info", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)

    assert result.returncode == 1
    assert "not a tub" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_clean_tub_passes():
    result = invoke("check", str(SHARED_TUB))

    assert result.exit_code == 0
    assert "1000 usable records" in result.output


def test_check_repair(tub_copy):
    data = (tub_copy / "catalog_0.catalog").read_bytes()
    (tub_copy / "catalog_0.catalog").write_bytes(data[:-50])
    (tub_copy / "images" / "7_cam_image_array_.jpg").unlink()

    found = invoke("check", str(tub_copy))
    repaired = invoke("check", str(tub_copy), "--repair")
    tub = open_tub(tub_copy)

    assert found.exit_code == 1
    assert "record 7: image file missing (not deleted)" in found.output
    assert repaired.exit_code == 0
    assert "repaired: removed" in repaired.output
    assert tub.problems[IMAGE_MISSING] == 1
    assert tub.problems[TRUNCATED_LINE] == 0
    assert tub.problems[LINE_LENGTHS_WRONG] == 0
    assert tub.deleted_indexes == {7}
    assert len(tub) == 998
    assert json.loads((tub_copy / "manifest.json").read_text().splitlines()[4])["current_index"] == 999
    assert invoke("check", str(tub_copy)).exit_code == 0


def test_convert_keeps_labels_and_bytes(tmp_path):
    written = make_legacy_tub(tmp_path / "old")
    old = open_tub(tmp_path / "old")
    old.delete([4])

    result = invoke("convert", str(tmp_path / "old"), str(tmp_path / "new"))
    new = open_tub(tmp_path / "new")
    copies = list(new.records(include_deleted=True))
    originals = list(old.records(include_deleted=True))

    assert result.exit_code == 0
    assert new.format == FORMAT_V2
    assert len(copies) == 30
    assert new.deleted_indexes == {3}
    assert [copy.values["user/angle"] for copy in copies] == [entry["user/angle"] for entry in written]
    assert [copy.timestamp_ms for copy in copies] == [record.timestamp_ms for record in originals]
    for copy, original in zip(copies, originals):
        assert copy.image_path.read_bytes() == original.image_path.read_bytes()


def test_convert_refuses_non_empty_target(tmp_path):
    make_legacy_tub(tmp_path / "old")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "keep.txt").write_text("mine")

    result = subprocess.run([sys.executable, "-m", "autodrive", "tub", "convert", str(tmp_path / "old"),
                             str(tmp_path / "new")], capture_output=True, text=True, cwd=REPO, timeout=120)

    assert result.returncode == 1
    assert "not empty" in result.stderr
    assert (tmp_path / "new" / "keep.txt").read_text() == "mine"


def test_tub_group_accepts_more_commands():
    import click

    from autodrive.commands import tub

    assert isinstance(tub.command, click.Group)
    assert {"info", "delete", "restore", "check", "convert"} <= set(tub.command.commands)


def test_info_histogram_counts(tmp_path):
    with TubWriter(tmp_path / "tub", ["user/angle", "user/throttle"], ["float", "float"]) as writer:
        for angle in np.linspace(-0.95, 0.95, 20):
            writer.write({"user/angle": float(angle), "user/throttle": 0.5}, block=True)

    summary = summarize(open_tub(tmp_path / "tub"))
    counts, _ = summary.histograms["user/angle"]

    assert counts.tolist() == [2] * 10
    assert summary.histograms["user/throttle"][0].tolist()[7] == 20
