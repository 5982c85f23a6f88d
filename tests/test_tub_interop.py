"""Tubs move both ways between autodrive and Donkey Car 5.x (run in its own venv)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from autodrive.tub import TubWriter, open_tub

INPUTS = ["cam/image_array", "user/angle", "user/throttle", "user/mode"]
TYPES = ["image_array", "float", "float", "str"]

# Runs inside the Donkey Car venv. Donkey prints a banner on import, so the
# results go to a JSON file instead of stdout.
DONKEY_SCRIPT = r"""
import json, sys
import numpy as np
from PIL import Image
from donkeycar.parts.tub_v2 import Tub

command, path, output = sys.argv[1], sys.argv[2], sys.argv[3]
if command == "read":
    tub = Tub(path, read_only=True)
    records = list(tub)
    sizes = []
    for record in records:
        with Image.open(f"{path}/images/{record['cam/image_array']}") as image:
            sizes.append(list(image.size))
    result = {"length": len(tub), "records": records, "sizes": sizes,
              "deleted": sorted(tub.manifest.deleted_indexes), "paths": tub.manifest.catalog_paths}
    tub.close()
elif command == "write":
    count, deleted = int(sys.argv[4]), json.loads(sys.argv[5])
    inputs = ["cam/image_array", "user/angle", "user/throttle", "user/mode"]
    types = ["image_array", "float", "float", "str"]
    tub = Tub(path, inputs=inputs, types=types)
    for index in range(count):
        image = np.full((120, 160, 3), index % 256, dtype=np.uint8)
        tub.write_record({"cam/image_array": image, "user/angle": (index % 21 - 10) / 10.0,
                          "user/throttle": index / count, "user/mode": "user"})
    tub.delete_records(deleted)
    tub.close()
    result = {"written": count}
elif command == "append":
    count = int(sys.argv[4])
    tub = Tub(path, inputs=["cam/image_array", "user/angle", "user/throttle", "user/mode"],
              types=["image_array", "float", "float", "str"])
    for index in range(count):
        image = np.zeros((120, 160, 3), dtype=np.uint8)
        tub.write_record({"cam/image_array": image, "user/angle": -0.5, "user/throttle": 0.25, "user/mode": "user"})
    tub.close()
    result = {"appended": count}
with open(output, "w") as file:
    json.dump(result, file)
"""


def run_donkey(donkey_python: Path, tmp_path: Path, *arguments: str) -> dict:
    script = tmp_path / "donkey_tub.py"
    script.write_text(DONKEY_SCRIPT)
    output = tmp_path / "donkey_output.json"
    done = subprocess.run([str(donkey_python), str(script), arguments[0], arguments[1], str(output), *arguments[2:]],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(output.read_text())


def autodrive_records(path: Path) -> list[dict]:
    """Records as Donkey Car returns them: the catalog line's keys and values."""
    tub = open_tub(path)
    rows = []
    for record in tub.records():
        row = dict(record.values)
        row["_index"] = record.index
        row["_session_id"] = record.session_id
        row["_timestamp_ms"] = record.timestamp_ms
        rows.append(row)
    return rows


def write_autodrive_tub(path: Path, count: int) -> None:
    rng = np.random.default_rng(7)
    with TubWriter(path, INPUTS, TYPES) as writer:
        for index in range(count):
            image = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
            writer.write({"cam/image_array": image, "user/angle": float(rng.uniform(-1, 1)),
                          "user/throttle": float(rng.uniform(0, 1)), "user/mode": "user"}, block=True)
    assert writer.count == count


def test_donkey_reads_autodrive_tub(donkey_python, tmp_path):
    tub_path = tmp_path / "autodrive_tub"
    write_autodrive_tub(tub_path, 1150)
    open_tub(tub_path).delete([3, 4, 5, 1001])

    donkey = run_donkey(donkey_python, tmp_path, "read", str(tub_path))

    assert donkey["paths"] == ["catalog_0.catalog", "catalog_1.catalog"]
    assert donkey["deleted"] == [3, 4, 5, 1001]
    assert donkey["length"] == 1146
    assert donkey["records"] == autodrive_records(tub_path)
    assert donkey["sizes"] == [[160, 120]] * 1146


def test_autodrive_reads_donkey_tub(donkey_python, tmp_path):
    tub_path = tmp_path / "donkey_tub"
    run_donkey(donkey_python, tmp_path, "write", str(tub_path), "1030", json.dumps([0, 7, 1020]))

    tub = open_tub(tub_path)
    records = list(tub.records())
    donkey = run_donkey(donkey_python, tmp_path, "read", str(tub_path))

    assert len(tub) == 1027
    assert tub.deleted_indexes == {0, 7, 1020}
    assert tub.problems == {}
    assert autodrive_records(tub_path) == donkey["records"]
    assert records[0].index == 1
    assert records[-1].values["user/throttle"] == pytest.approx(1029 / 1030)
    assert tub.load_image(records[-1]).shape == (120, 160, 3)


def test_donkey_appends_after_autodrive(donkey_python, tmp_path):
    tub_path = tmp_path / "shared_tub"
    write_autodrive_tub(tub_path, 20)

    run_donkey(donkey_python, tmp_path, "append", str(tub_path), "5")
    tub = open_tub(tub_path)
    records = list(tub.records())

    assert len(tub) == 25
    assert [record.index for record in records] == list(range(25))
    assert len(tub.sessions) == 2
    assert records[-1].session_id == tub.sessions[-1]
    assert records[0].session_id != records[-1].session_id
    assert tub.problems == {}
