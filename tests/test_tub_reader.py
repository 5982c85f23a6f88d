"""Reading the real Donkey Car tub, damaged copies of it, and the old tub format."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from autodrive.errors import AutodriveError
from autodrive.tub import FORMAT_LEGACY, FORMAT_V2, TubError, open_tub
from autodrive.tub import record as problems

SHARED_TUB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"
CATALOG = "catalog_0.catalog"

# The real tub's own quirks, present in every copy of it.
REAL_NOTES = {
    problems.NO_SESSION_ID: 1000,
    problems.OLD_METADATA: 1,
    problems.UNUSED_INPUT: 1,
    problems.JUNK_FILE: 1,
}


@pytest.fixture
def tub_copy(tmp_path: Path) -> Path:
    """A writable copy of the real tub."""
    target = tmp_path / "tub"
    shutil.copytree(SHARED_TUB, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def catalog_lines(tub: Path) -> list[str]:
    return (tub / CATALOG).read_text().splitlines(keepends=True)


def set_line(tub: Path, number: int, text: str) -> None:
    lines = catalog_lines(tub)
    lines[number] = text
    (tub / CATALOG).write_text("".join(lines))


def set_value(tub: Path, number: int, key: str, raw_json: str) -> None:
    """Replace one value in catalog line ``number`` with ``raw_json`` written as is."""
    record = json.loads(catalog_lines(tub)[number])
    record[key] = "@@"
    set_line(tub, number, json.dumps(record, sort_keys=True).replace('"@@"', raw_json) + "\n")


def set_manifest_line(tub: Path, number: int, value: object) -> None:
    lines = (tub / "manifest.json").read_text().splitlines()
    lines[number] = json.dumps(value)
    (tub / "manifest.json").write_text("\n".join(lines) + "\n")


# -- the real tub --------------------------------------------------------------


def test_real_tub_reads_1000_records():
    tub = open_tub(SHARED_TUB)
    records = list(tub.records())
    angles = [record.values["user/angle"] for record in records]
    throttles = [record.values["user/throttle"] for record in records]

    assert tub.format == FORMAT_V2
    assert len(tub) == 1000
    assert [record.index for record in records] == list(range(1000))
    assert min(angles) == pytest.approx(-0.857, abs=0.001)
    assert max(angles) == 1.0
    assert min(throttles) == pytest.approx(0.416, abs=0.001)
    assert max(throttles) == pytest.approx(0.804, abs=0.001)
    assert {record.values["user/mode"] for record in records} == {"user"}
    assert all(isinstance(angle, float) for angle in angles)


def test_real_tub_first_record_matches_catalog():
    first_line = json.loads((SHARED_TUB / CATALOG).read_text().splitlines()[0])
    record = next(open_tub(SHARED_TUB).records())

    assert record.values["user/angle"] == first_line["user/angle"]
    assert record.values["user/throttle"] == first_line["user/throttle"]
    assert record.timestamp_ms == first_line["_timestamp_ms"]
    assert record.session_id is None
    assert record.image_path == SHARED_TUB / "images" / "0_cam_image_array_.jpg"


def test_real_tub_quirks_reported_as_notes():
    tub = open_tub(SHARED_TUB)

    assert dict(tub.problems) == REAL_NOTES
    assert tub.unusable == {}
    assert tub.deleted_indexes == set()
    assert tub.sessions == []
    assert tub.inputs == ["cam/image_array", "user/angle", "user/throttle", "user/mode", "timestamp"]


def test_real_tub_image_is_rgb():
    tub = open_tub(SHARED_TUB)
    image = tub.load_image(tub.record(0))

    assert image.shape == (120, 160, 3)
    assert image.dtype == np.uint8
    # The track's floor is grey concrete, so no channel dominates on average.
    assert np.ptp(image.reshape(-1, 3).mean(axis=0)) < 40


def test_apple_double_catalog_never_read(tub_copy):
    (tub_copy / "._catalog_0.catalog").write_text('{"_index": 5000, "user/angle": 9}\n')
    (tub_copy / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")

    tub = open_tub(tub_copy)

    assert len(tub) == 1000
    assert 5000 not in tub.indexes
    assert tub.problems[problems.JUNK_FILE] == 2
    assert tub.problems[problems.UNPARSABLE_LINE] == 0


def test_catalog_outside_paths_ignored(tub_copy):
    shutil.copy(tub_copy / CATALOG, tub_copy / "catalog_1.catalog")

    tub = open_tub(tub_copy)

    assert len(tub) == 1000
    assert tub.problems[problems.DUPLICATE_INDEX] == 0


# -- damaged copies: what is kept and what is reported ----------------------------


def truncate_last_line(tub: Path) -> None:
    data = (tub / CATALOG).read_bytes()
    (tub / CATALOG).write_bytes(data[:-60])


def drop_final_newline(tub: Path) -> None:
    data = (tub / CATALOG).read_bytes()
    (tub / CATALOG).write_bytes(data.rstrip(b"\n"))


def break_line_10(tub: Path) -> None:
    set_line(tub, 10, '{"_index": 10, "user/angle": 0.1, "user/thr\n')


def blank_line_20(tub: Path) -> None:
    set_line(tub, 20, "\n")


def list_line_30(tub: Path) -> None:
    set_line(tub, 30, "[1, 2, 3]\n")


def wrong_line_lengths(tub: Path) -> None:
    manifest_path = tub / "catalog_0.catalog_manifest"
    contents = json.loads(manifest_path.read_text())
    contents["line_lengths"] = contents["line_lengths"][:500] + [100] * 500
    manifest_path.write_text(json.dumps(contents) + "\n")


def remove_catalog_manifest(tub: Path) -> None:
    (tub / "catalog_0.catalog_manifest").unlink()


def empty_catalog(tub: Path) -> None:
    (tub / CATALOG).write_bytes(b"")


def list_missing_catalog(tub: Path) -> None:
    set_manifest_line(tub, 4, {"paths": [CATALOG, "catalog_1.catalog"], "current_index": 1000,
                               "max_len": 1000, "deleted_indexes": []})


def remove_images_5_to_7(tub: Path) -> None:
    for index in (5, 6, 7):
        (tub / "images" / f"{index}_cam_image_array_.jpg").unlink()


def corrupt_images(tub: Path) -> None:
    (tub / "images" / "8_cam_image_array_.jpg").write_bytes(b"not a jpeg at all")
    image_9 = tub / "images" / "9_cam_image_array_.jpg"
    image_9.write_bytes(image_9.read_bytes()[:1000])
    (tub / "images" / "11_cam_image_array_.jpg").write_bytes(b"")


def no_image_name(tub: Path) -> None:
    set_value(tub, 12, "cam/image_array", "null")


def negative_zero(tub: Path) -> None:
    set_value(tub, 3, "user/angle", "-0.0")


def integer_floats(tub: Path) -> None:
    set_value(tub, 4, "user/angle", "1")
    set_value(tub, 4, "user/throttle", "0")


def null_values(tub: Path) -> None:
    set_value(tub, 13, "user/angle", "null")
    set_value(tub, 14, "user/mode", "null")


def nan_and_infinity(tub: Path) -> None:
    set_value(tub, 15, "user/angle", "NaN")
    set_value(tub, 16, "user/throttle", "Infinity")


def text_where_float(tub: Path) -> None:
    set_value(tub, 17, "user/angle", '"left"')


def missing_input(tub: Path) -> None:
    record = json.loads(catalog_lines(tub)[18])
    del record["user/throttle"]
    set_line(tub, 18, json.dumps(record, sort_keys=True) + "\n")


def duplicate_index(tub: Path) -> None:
    record = json.loads(catalog_lines(tub)[19])
    record["_index"] = 18
    set_line(tub, 19, json.dumps(record, sort_keys=True) + "\n")


def missing_index(tub: Path) -> None:
    record = json.loads(catalog_lines(tub)[21])
    del record["_index"]
    set_line(tub, 21, json.dumps(record, sort_keys=True) + "\n")


def wrong_current_index(tub: Path) -> None:
    set_manifest_line(tub, 4, {"paths": [CATALOG], "current_index": 40, "max_len": 1000, "deleted_indexes": []})


CASES = [
    # name, damage, records kept, problems reported, unusable indexes
    ("truncated last line", truncate_last_line, 999, {problems.TRUNCATED_LINE: 1, problems.LINE_LENGTHS_WRONG: 1,
                                                      problems.CURRENT_INDEX_WRONG: 1}, {}),
    ("no final newline", drop_final_newline, 1000, {problems.NO_FINAL_NEWLINE: 1, problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("unparsable line", break_line_10, 999, {problems.UNPARSABLE_LINE: 1, problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("blank line", blank_line_20, 999, {problems.BLANK_LINE: 1, problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("line not an object", list_line_30, 999, {problems.NOT_A_RECORD: 1, problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("line_lengths disagree", wrong_line_lengths, 1000, {problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("catalog_manifest missing", remove_catalog_manifest, 1000, {problems.CATALOG_MANIFEST_MISSING: 1}, {}),
    ("empty catalog", empty_catalog, 0, {problems.EMPTY_CATALOG: 1, problems.LINE_LENGTHS_WRONG: 1,
                                         problems.CURRENT_INDEX_WRONG: 1}, {}),
    ("listed catalog missing", list_missing_catalog, 1000, {problems.CATALOG_MISSING: 1}, {}),
    ("images missing", remove_images_5_to_7, 997, {problems.IMAGE_MISSING: 3},
     {5: problems.IMAGE_MISSING, 6: problems.IMAGE_MISSING, 7: problems.IMAGE_MISSING}),
    ("images not JPEG", corrupt_images, 997, {problems.IMAGE_INVALID: 3},
     {8: problems.IMAGE_INVALID, 9: problems.IMAGE_INVALID, 11: problems.IMAGE_INVALID}),
    ("image name null", no_image_name, 999, {problems.IMAGE_NAME_MISSING: 1, problems.NULL_VALUE: 1,
                                             problems.LINE_LENGTHS_WRONG: 1}, {12: problems.IMAGE_NAME_MISSING}),
    ("negative zero", negative_zero, 1000, {problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("integers as floats", integer_floats, 1000, {problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("null values", null_values, 1000, {problems.NULL_VALUE: 2, problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("NaN and infinity", nan_and_infinity, 1000, {problems.NON_FINITE_VALUE: 2, problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("text as float", text_where_float, 1000, {problems.WRONG_TYPE: 1, problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("record lacks input", missing_input, 1000, {problems.MISSING_INPUT: 1, problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("duplicate index", duplicate_index, 999, {problems.DUPLICATE_INDEX: 1}, {}),
    ("record without index", missing_index, 1000, {problems.NO_INDEX: 1, problems.LINE_LENGTHS_WRONG: 1}, {}),
    ("current_index wrong", wrong_current_index, 1000, {problems.CURRENT_INDEX_WRONG: 1}, {}),
]


@pytest.mark.parametrize("damage, kept, reported, unusable", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_damaged_tub(tub_copy, damage, kept, reported, unusable):
    damage(tub_copy)

    tub = open_tub(tub_copy)

    assert len(tub) == kept
    assert tub.unusable == unusable
    damage_found = {problem: count for problem, count in tub.problems.items() if problem not in problems.NOTES}
    assert damage_found == reported
    assert all(record.index not in unusable for record in tub.records())


def test_values_normalised(tub_copy):
    negative_zero(tub_copy)
    integer_floats(tub_copy)
    null_values(tub_copy)
    nan_and_infinity(tub_copy)

    tub = open_tub(tub_copy)

    assert math.copysign(1.0, tub.record(3).values["user/angle"]) == 1.0
    assert tub.record(4).values["user/angle"] == 1.0
    assert type(tub.record(4).values["user/throttle"]) is float
    assert tub.record(13).values["user/angle"] is None
    assert tub.record(14).values["user/mode"] is None
    assert tub.record(15).values["user/angle"] is None
    assert tub.record(16).values["user/throttle"] is None


def test_good_records_kept_around_damage(tub_copy):
    originals = {record.index: record.values for record in open_tub(SHARED_TUB).records()}
    break_line_10(tub_copy)
    truncate_last_line(tub_copy)
    remove_images_5_to_7(tub_copy)

    tub = open_tub(tub_copy)

    assert tub.indexes == [index for index in range(999) if index not in (5, 6, 7, 10)]
    assert all(record.values == originals[record.index] for record in tub.records())


def test_problem_logged_once_per_tub(tub_copy, caplog):
    remove_images_5_to_7(tub_copy)

    with caplog.at_level(logging.WARNING, logger="autodrive.tub"):
        open_tub(tub_copy)

    lines = [entry.getMessage() for entry in caplog.records if problems.IMAGE_MISSING in entry.getMessage()]
    assert len(lines) == 1
    assert lines[0].endswith("(3)")


def test_corrupt_image_load_raises(tub_copy):
    tub = open_tub(tub_copy)
    record = tub.record(8)
    (tub_copy / "images" / "8_cam_image_array_.jpg").write_bytes(b"\xff\xd8\xff garbage \xff\xd9")

    with pytest.raises(TubError, match="8_cam_image_array_.jpg"):
        tub.load_image(record)


def test_deleted_indexes_honoured(tub_copy):
    set_manifest_line(tub_copy, 4, {"paths": [CATALOG], "current_index": 1000, "max_len": 1000,
                                    "deleted_indexes": [1, 2, 500]})

    tub = open_tub(tub_copy)

    assert len(tub) == 997
    assert tub.deleted_indexes == {1, 2, 500}
    assert 500 not in [record.index for record in tub.records()]
    assert len(list(tub.records(include_deleted=True))) == 1000
    assert tub.record(500).deleted


def test_delete_and_restore_persist(tub_copy):
    open_tub(tub_copy).delete(range(100, 250))
    open_tub(tub_copy).restore([100, 101])

    tub = open_tub(tub_copy)

    assert len(tub) == 852
    assert tub.deleted_indexes == set(range(102, 250))
    assert json.loads((tub_copy / "manifest.json").read_text().splitlines()[4])["deleted_indexes"][0] == 102


# -- not a tub -------------------------------------------------------------------


def test_missing_folder_raises(tmp_path):
    with pytest.raises(TubError, match="no such folder"):
        open_tub(tmp_path / "nothing")


def test_plain_folder_raises(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")

    with pytest.raises(TubError, match="not a tub") as caught:
        open_tub(tmp_path)

    assert isinstance(caught.value, AutodriveError)
    assert isinstance(caught.value, ValueError)


def test_unreadable_manifest_raises(tub_copy):
    (tub_copy / "manifest.json").write_text('["cam/image_array"]\n')

    with pytest.raises(TubError, match="expected 5 JSON lines"):
        open_tub(tub_copy)


# -- the old format -------------------------------------------------------------


def make_legacy_tub(path: Path, count: int = 30) -> list[dict]:
    """Write an old-format tub from the real tub's first records; return the records written."""
    path.mkdir()
    source = list(open_tub(SHARED_TUB).records())[:count]
    start_s = 1500000000.25
    (path / "meta.json").write_text(json.dumps({
        "inputs": ["cam/image_array", "user/angle", "user/throttle", "user/mode"],
        "types": ["image_array", "float", "float", "str"],
        "start": start_s,
    }))
    written = []
    for number, record in enumerate(source, start=1):
        image_name = f"{number}_cam-image_array_.jpg"
        shutil.copy(record.image_path, path / image_name)
        contents = {"cam/image_array": image_name, "user/angle": record.values["user/angle"],
                    "user/throttle": record.values["user/throttle"], "user/mode": "user",
                    "milliseconds": 50 * number}
        (path / f"record_{number}.json").write_text(json.dumps(contents))
        written.append(contents)
    (path / "._record_3.json").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    return written


def test_legacy_tub_read(tmp_path):
    written = make_legacy_tub(tmp_path / "old")

    tub = open_tub(tmp_path / "old")
    records = list(tub.records())

    assert tub.format == FORMAT_LEGACY
    assert len(tub) == 30
    assert [record.index for record in records] == list(range(1, 31))
    assert [record.values["user/angle"] for record in records] == [entry["user/angle"] for entry in written]
    assert records[0].timestamp_ms == 1500000000250 + 50
    assert records[0].image_path == tmp_path / "old" / "1_cam-image_array_.jpg"
    assert "milliseconds" not in records[0].values
    assert dict(tub.problems) == {problems.JUNK_FILE: 1}
    assert tub.load_image(records[0]).shape == (120, 160, 3)


def test_legacy_tub_bad_files(tmp_path):
    make_legacy_tub(tmp_path / "old")
    (tmp_path / "old" / "record_4.json").write_text('{"cam/image_array": "4_cam-ima')
    (tmp_path / "old" / "5_cam-image_array_.jpg").unlink()

    tub = open_tub(tmp_path / "old")

    assert len(tub) == 28
    assert tub.problems[problems.UNREADABLE_RECORD_FILE] == 1
    assert tub.unusable == {5: problems.IMAGE_MISSING}


def test_legacy_delete_uses_exclude_file(tmp_path):
    make_legacy_tub(tmp_path / "old")

    open_tub(tmp_path / "old").delete([2, 3])
    tub = open_tub(tmp_path / "old")

    assert json.loads((tmp_path / "old" / "exclude.json").read_text()) == [2, 3]
    assert len(tub) == 28
    assert tub.deleted_indexes == {2, 3}
