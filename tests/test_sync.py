"""autodrive sync: pulling tubs from a car folder and pushing models to it with real rsync runs.

The "car" here is a local folder built from a copy of the real recording; the
user@host:path form is tested against a real sshd in test_sync_ssh.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autodrive.sync import (
    PARTIAL_DIR,
    SshSettings,
    SyncError,
    explain_failure,
    find_model,
    parse_car,
    pull,
    push,
    rsync_command,
)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_TUB = DATA / "tubs" / "donkeycar-track-2020"
REAL_RECORDS = 1000

pytestmark = pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed (apt install rsync)")


# -- helpers ------------------------------------------------------------------


def make_car(root: Path, name: str = "car") -> Path:
    """Return a car folder whose data/ is a writable copy of the real tub."""
    car = root / name
    (car / "models").mkdir(parents=True)
    shutil.copytree(REAL_TUB, car / "data")
    for folder, _, files in os.walk(car):
        os.chmod(folder, 0o755)
        for file in files:
            os.chmod(Path(folder) / file, 0o644)
    return car


def read_manifest(tub: Path) -> list:
    return [json.loads(line) for line in (tub / "manifest.json").read_text().splitlines() if line.strip()]


def write_manifest(tub: Path, lines: list) -> None:
    (tub / "manifest.json").write_text("".join(json.dumps(line) + "\n" for line in lines))


def mark_deleted(tub: Path, indexes: set[int]) -> None:
    lines = read_manifest(tub)
    lines[4]["deleted_indexes"] = sorted(set(lines[4]["deleted_indexes"]) | indexes)
    write_manifest(tub, lines)


def restore(tub: Path, indexes: set[int]) -> None:
    lines = read_manifest(tub)
    lines[4]["deleted_indexes"] = sorted(set(lines[4]["deleted_indexes"]) - indexes)
    write_manifest(tub, lines)


def append_records(tub: Path, count: int, *, update_manifests: bool = True, truncated_tail: bool = False) -> list[int]:
    """Record ``count`` more frames the way a car does: image first, then its line in catalog_1.catalog.

    Without ``update_manifests`` the manifests stay as they were before the
    new lines (a car that has not rewritten them yet); ``truncated_tail``
    adds half of one more line, as a power cut during a write leaves it.
    """
    last = json.loads((tub / "catalog_0.catalog").read_text().splitlines()[-1])
    catalog = tub / "catalog_1.catalog"
    existing = catalog.read_text().splitlines() if catalog.exists() else []
    first_index = json.loads(existing[-1])["_index"] + 1 if existing else last["_index"] + 1
    image = (tub / "images" / last["cam/image_array"]).read_bytes()

    indexes = list(range(first_index, first_index + count))
    lengths = []
    with catalog.open("a") as file:
        for index in indexes:
            name = f"{index}_cam_image_array_.jpg"
            (tub / "images" / name).write_bytes(image)
            line = json.dumps({**last, "_index": index, "cam/image_array": name, "_timestamp_ms": last["_timestamp_ms"] + 50 * (index - last["_index"])}) + "\n"
            file.write(line)
            lengths.append(len(line.encode()))
        if truncated_tail:
            (tub / "images" / f"{indexes[-1] + 1}_cam_image_array_.jpg").write_bytes(image)
            file.write(json.dumps({**last, "_index": indexes[-1] + 1})[:40])

    if update_manifests:
        catalog_manifest = tub / "catalog_1.catalog_manifest"
        old_lengths = json.loads(catalog_manifest.read_text())["line_lengths"] if catalog_manifest.exists() else []
        catalog_manifest.write_text(json.dumps({"created_at": 1.0, "line_lengths": old_lengths + lengths, "path": catalog_manifest.name, "start_index": REAL_RECORDS}) + "\n")
        lines = read_manifest(tub)
        if "catalog_1.catalog" not in lines[4]["paths"]:
            lines[4]["paths"].append("catalog_1.catalog")
        lines[4]["current_index"] = indexes[-1] + 1
        write_manifest(tub, lines)
    return indexes


def complete_record_indexes(tub: Path) -> list[int]:
    """Return the _index of every complete catalog line, in the order the manifest lists catalogs."""
    indexes = []
    names = read_manifest(tub)[4]["paths"]
    for name in names:
        for line in (tub / name).read_text().split("\n")[:-1]:
            indexes.append(json.loads(line)["_index"])
    return indexes


def tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Return every file under ``folder`` with its size and modification time in ns."""
    state = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        state[str(path.relative_to(folder))] = (info.st_size, info.st_mtime_ns if stat.S_ISREG(info.st_mode) else 0)
    return state


def open_tub_or_skip():
    try:
        from autodrive.tub import open_tub
    except ImportError as error:
        pytest.skip(f"the tub reader is not importable yet: {error}")
    return open_tub


def run_cli(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autodrive", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120, env=env,
    )


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("autodrive:")]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the CAR argument and the rsync command -----------------------------------


def test_parse_car_forms(tmp_path):
    remote = parse_car("pi@127.0.0.1:mycar")
    assert remote.is_remote
    assert remote.host == "pi@127.0.0.1"
    assert remote.rsync_path("data") == "pi@127.0.0.1:mycar/data/"

    absolute = parse_car("127.0.0.1:/home/pi/mycar")
    assert absolute.host == "127.0.0.1"
    assert absolute.rsync_path("data") == "127.0.0.1:/home/pi/mycar/data/"

    home = parse_car("pi@127.0.0.1:")
    assert home.rsync_path("models") == "pi@127.0.0.1:./models/"

    local = parse_car(str(tmp_path / "car"))
    assert not local.is_remote
    assert local.rsync_path("data") == f"{tmp_path}/car/data/"


def test_parse_car_colon_after_slash_is_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    endpoint = parse_car("./odd:name")

    assert not endpoint.is_remote
    assert endpoint.rsync_path("data") == f"{tmp_path}/odd:name/data/"


@pytest.mark.parametrize("text", ["rsync://127.0.0.1/car", "127.0.0.1::car", "  "])
def test_parse_car_rejects_daemon_and_empty(text):
    with pytest.raises(SyncError):
        parse_car(text)


def test_rsync_command_remote_uses_ssh_settings():
    ssh = SshSettings(port=2222, options=("-i", "/keys/car"), connect_timeout_s=7, batch_mode=True)

    command = rsync_command("rsync", ["pi@127.0.0.1:mycar/data/"], "/desk/data/", ssh=ssh, progress=True, bandwidth_limit_kbps=500)

    assert command[0] == "rsync"
    assert f"--partial-dir={PARTIAL_DIR}" in command
    assert "--info=progress2" in command
    assert "--bwlimit=500" in command
    assert "--dry-run" not in command
    shell = command[command.index("-e") + 1]
    assert shell.startswith("ssh -p 2222 ")
    assert "ConnectTimeout=7" in shell
    assert "BatchMode=yes" in shell
    assert shell.endswith("-i /keys/car")
    assert command[-2:] == ["pi@127.0.0.1:mycar/data/", "/desk/data/"]


def test_rsync_command_local_has_no_ssh():
    command = rsync_command("rsync", ["/car/data/"], "/desk/data/", dry_run=True)

    assert "-e" not in command
    assert "--dry-run" in command
    assert "--info=progress2" not in command


# -- pull ---------------------------------------------------------------------


def test_pull_into_empty_folder(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"

    report = pull(str(car), desk)

    local = desk / "data"
    assert len(report.files) == REAL_RECORDS + 4  # images, catalog, its manifest, manifest.json, ._catalog_0.catalog
    assert (local / "catalog_0.catalog").read_bytes() == (car / "data" / "catalog_0.catalog").read_bytes()
    assert (local / "images" / "999_cam_image_array_.jpg").read_bytes() == (car / "data" / "images" / "999_cam_image_array_.jpg").read_bytes()
    assert read_manifest(local) == read_manifest(car / "data")
    assert report.tubs[0].deleted_indexes == []

    open_tub = open_tub_or_skip()
    tub = open_tub(local)
    assert len(tub) == REAL_RECORDS


def test_pull_again_copies_only_new_records(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    pull(str(car), desk)
    new = append_records(car / "data", 25)

    report = pull(str(car), desk)

    local = desk / "data"
    new_images = {f"images/{index}_cam_image_array_.jpg" for index in new}
    assert new_images <= set(report.files)
    assert "images/0_cam_image_array_.jpg" not in report.files
    assert "catalog_0.catalog" not in report.files
    assert "catalog_1.catalog" in report.files
    assert complete_record_indexes(local) == list(range(REAL_RECORDS + len(new)))

    open_tub = open_tub_or_skip()
    assert len(open_tub(local)) == REAL_RECORDS + len(new)


def test_pull_keeps_local_deletions(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    pull(str(car), desk)
    local = desk / "data"
    mark_deleted(local, {3, 4, 5, 500})
    new = append_records(car / "data", 10)

    report = pull(str(car), desk)

    assert read_manifest(local)[4]["deleted_indexes"] == [3, 4, 5, 500]
    assert report.tubs[0].deleted_indexes == [3, 4, 5, 500]
    assert complete_record_indexes(local)[-1] == new[-1]

    open_tub = open_tub_or_skip()
    tub = open_tub(local)
    assert tub.deleted_indexes == {3, 4, 5, 500}
    assert len(tub) == REAL_RECORDS + len(new) - 4


def test_pull_adds_new_car_deletions_and_keeps_restores(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    mark_deleted(car / "data", {7})
    pull(str(car), desk)
    local = desk / "data"
    assert read_manifest(local)[4]["deleted_indexes"] == [7]
    restore(local, {7})
    mark_deleted(local, {20})
    mark_deleted(car / "data", {900})

    report = pull(str(car), desk)

    assert read_manifest(local)[4]["deleted_indexes"] == [20, 900]
    assert report.tubs[0].new_car_deletions == [900]


def test_pull_tub_being_written(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    append_records(car / "data", 5)
    stale_manifest = read_manifest(car / "data")
    new = append_records(car / "data", 12, update_manifests=False, truncated_tail=True)
    assert read_manifest(car / "data") == stale_manifest

    pull(str(car), desk)

    local = desk / "data"
    catalog = (local / "catalog_1.catalog").read_text()
    assert not catalog.endswith("\n")
    assert complete_record_indexes(local)[-1] == new[-1]
    for index in complete_record_indexes(local):
        assert (local / "images" / f"{index}_cam_image_array_.jpg").is_file()

    open_tub = open_tub_or_skip()
    tub = open_tub(local)
    assert len(tub) == REAL_RECORDS + 5 + len(new)
    assert [record.index for record in tub.records()][-1] == new[-1]


def test_pull_lists_catalog_missing_from_car_manifest(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    append_records(car / "data", 3, update_manifests=False)

    pull(str(car), desk)

    assert read_manifest(desk / "data")[4]["paths"] == ["catalog_0.catalog", "catalog_1.catalog"]


def test_pull_resumes_from_partial_file(tmp_path):
    car = make_car(tmp_path)
    big = os.urandom(8 * 1024 * 1024)
    (car / "data" / "big_file.bin").write_bytes(big)
    partial = tmp_path / "desk" / "data" / PARTIAL_DIR / "big_file.bin"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(big[: len(big) // 2])

    report = pull(str(car), tmp_path / "desk")

    assert (tmp_path / "desk" / "data" / "big_file.bin").read_bytes() == big
    assert report.bytes_matched >= len(big) // 2 - 65536
    assert not partial.exists()


def test_pull_resumes_after_interrupt(tmp_path):
    car = make_car(tmp_path)
    big = os.urandom(16 * 1024 * 1024)
    (car / "data" / "big_file.bin").write_bytes(big)
    desk = tmp_path / "desk"
    local = desk / "data"
    command = [sys.executable, "-m", "autodrive", "sync", "pull", str(car), "--car", str(desk), "--set", "sync.bandwidth_limit_kbps=1000"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

    # Wait until rsync has started writing the big file, then press Ctrl-C (SIGINT to the process group).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if any(path.stat().st_size > 0 for path in local.glob(".big_file.bin.*")):
            break
        time.sleep(0.05)
    assert process.poll() is None, "the pull ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)
    process.communicate(timeout=60)

    assert process.returncode != 0
    assert not (local / "big_file.bin").exists()
    partial = local / PARTIAL_DIR / "big_file.bin"
    assert partial.is_file()
    kept = partial.stat().st_size
    assert 0 < kept < len(big)

    report = pull(str(car), desk)

    assert (local / "big_file.bin").read_bytes() == big
    assert report.bytes_matched > 0
    open_tub = open_tub_or_skip()
    assert len(open_tub(local)) == REAL_RECORDS


def test_pull_dry_run_changes_nothing(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    pull(str(car), desk)
    mark_deleted(desk / "data", {1})
    new = append_records(car / "data", 4)
    before = tree_state(desk)

    report = pull(str(car), desk, dry_run=True)

    assert tree_state(desk) == before
    assert report.dry_run
    assert report.tubs == []
    assert {f"images/{index}_cam_image_array_.jpg" for index in new} <= set(report.files)
    assert "images/0_cam_image_array_.jpg" not in report.files


def test_pull_dry_run_into_missing_folder(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"

    result = run_cli("sync", "pull", str(car), "--car", str(desk), "--dry-run")

    assert result.returncode == 0, result.stderr
    assert not desk.exists()
    assert "would copy images/999_cam_image_array_.jpg" in result.stdout
    assert f"{REAL_RECORDS + 4} files would be copied" in result.stdout


def test_pull_refuses_other_recording(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    pull(str(car), desk)
    lines = read_manifest(car / "data")
    lines[3]["created_at"] += 3600
    write_manifest(car / "data", lines)
    (car / "data" / "images" / "0_cam_image_array_.jpg").write_bytes(b"another recording")
    before = tree_state(desk / "data")

    with pytest.raises(SyncError, match="different recording"):
        pull(str(car), desk)

    assert tree_state(desk / "data") == before


def test_pull_cli_reports_counts(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    mark_deleted(car / "data", {2, 3})

    result = run_cli("sync", "pull", str(car), "--car", str(desk), "--no-progress")

    assert result.returncode == 0, result.stderr
    assert f"pulled {REAL_RECORDS + 4} files" in result.stdout
    assert "2 records marked deleted" in result.stdout


def test_pull_uses_sync_car_and_recording_tub(tmp_path):
    car = make_car(tmp_path)
    (car / "data").rename(car / "runs")
    desk = tmp_path / "desk"
    desk.mkdir()
    (desk / "myconfig.yaml").write_text(f"sync:\n  car: {car}\nrecording:\n  tub: runs\n")

    result = run_cli("sync", "pull", "--car", str(desk))

    assert result.returncode == 0, result.stderr
    assert (desk / "runs" / "images" / "0_cam_image_array_.jpg").is_file()
    assert not (desk / "data").exists()


# -- push ---------------------------------------------------------------------


def make_models(desk: Path) -> Path:
    models = desk / "models"
    models.mkdir(parents=True)
    for name, stamp in (("older", 1_000_000), ("newest", 2_000_000)):
        for suffix in (".tflite", ".json", ".keras"):
            path = models / f"{name}{suffix}"
            path.write_bytes(f"{name}{suffix}".encode() * 100)
            os.utime(path, (stamp, stamp))
    return models


def test_push_newest_model(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    models = make_models(desk)

    report = push(str(car), models)

    assert report.model == "newest"
    assert sorted(report.files) == ["newest.json", "newest.tflite"]
    assert sorted(path.name for path in (car / "models").iterdir()) == ["newest.json", "newest.tflite"]
    assert (car / "models" / "newest.tflite").read_bytes() == (models / "newest.tflite").read_bytes()


def test_push_named_model_all_files(tmp_path):
    car = make_car(tmp_path)
    models = make_models(tmp_path / "desk")

    report = push(str(car), models, model="older.tflite", all_files=True)

    assert report.model == "older"
    assert sorted(report.files) == ["older.json", "older.keras", "older.tflite"]
    assert (car / "models" / "older.keras").is_file()


def test_push_twice_copies_nothing(tmp_path):
    car = make_car(tmp_path)
    models = make_models(tmp_path / "desk")
    push(str(car), models)

    report = push(str(car), models)

    assert report.files == []


def test_push_dry_run_changes_nothing(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    make_models(desk)
    before = tree_state(car)

    result = run_cli("sync", "push", str(car), "--car", str(desk), "--model", "older", "--dry-run")

    assert result.returncode == 0, result.stderr
    assert tree_state(car) == before
    assert "would copy older.tflite" in result.stdout
    assert "would copy older.json" in result.stdout
    assert "older.keras" not in result.stdout


def test_find_model_keras_only_needs_all_files(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine.keras").write_bytes(b"k")

    with pytest.raises(SyncError, match="--all-files"):
        find_model(models, "mine", all_files=False)
    assert find_model(models, "mine", all_files=True) == ("mine", [models / "mine.keras"])


def test_push_without_models_says_train(tmp_path):
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    (desk / "models").mkdir(parents=True)

    result = run_cli("sync", "push", str(car), "--car", str(desk))

    assert result.returncode == 1
    assert error_lines(result) == [f"autodrive: no .tflite model in {desk / 'models'}; train one with 'autodrive train' or name one with --model"]


# -- errors -------------------------------------------------------------------


def tool_path(tmp_path: Path, *tools: str) -> dict:
    """Return an environment whose PATH holds only the named tools."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for tool in tools:
        (folder / tool).symlink_to(shutil.which(tool))
    return {**os.environ, "PATH": str(folder)}


def test_error_missing_rsync(tmp_path):
    car = make_car(tmp_path)

    result = run_cli("sync", "pull", str(car), "--car", str(tmp_path / "desk"), env=tool_path(tmp_path, "ssh"))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = error_lines(result)
    assert len(lines) == 1
    assert "rsync not found on PATH" in lines[0]
    assert "apt install rsync" in lines[0]


def test_error_missing_ssh(tmp_path):
    result = run_cli("sync", "pull", "pi@127.0.0.1:mycar", "--car", str(tmp_path / "desk"), env=tool_path(tmp_path, "rsync"))

    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1
    assert "ssh not found on PATH" in lines[0]
    assert "openssh-client" in lines[0]


def test_error_connection_refused(tmp_path):
    port = closed_port()

    result = run_cli("sync", "pull", "pi@127.0.0.1:mycar", "--car", str(tmp_path / "desk"), "--set", f"sync.ssh_port={port}")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = error_lines(result)
    assert len(lines) == 1
    assert f"cannot connect to 127.0.0.1 port {port}: connection refused" in lines[0]
    assert "sync.ssh_port" in lines[0]


def test_error_wrong_local_car_path(tmp_path):
    missing = tmp_path / "no-such-car"

    result = run_cli("sync", "pull", str(missing), "--car", str(tmp_path / "desk"))

    assert result.returncode == 1
    assert error_lines(result) == [f"autodrive: car folder {missing} not found; give the car as user@host:path or an existing folder"]


def test_error_car_without_tub_folder(tmp_path):
    car = tmp_path / "car"
    car.mkdir()

    with pytest.raises(SyncError, match="recorded nothing yet"):
        pull(str(car), tmp_path / "desk")


def test_error_no_car_given(tmp_path):
    result = run_cli("sync", "pull", "--car", str(tmp_path))

    assert result.returncode == 2
    lines = error_lines(result)
    assert len(lines) == 1
    assert "sync.car is not set" in lines[0]


@pytest.mark.parametrize(
    ("code", "errors", "expected"),
    [
        (255, "pi@127.0.0.1: Permission denied (publickey,password).\n", "ssh-copy-id -p 22 pi@127.0.0.1"),
        (255, "Host key verification failed.\n", "SSH host key of 127.0.0.1"),
        (12, "bash: line 1: rsync: command not found\nrsync: connection unexpectedly closed\n", "rsync is not installed on the car"),
        (255, "ssh: connect to host 127.0.0.1 port 22: Connection timed out\n", "cannot reach 127.0.0.1"),
        (23, 'rsync: [sender] change_dir "/home/pi/nocar/data" failed: No such file or directory (2)\n', "/home/pi/nocar/data not found on pi@127.0.0.1"),
        (11, "rsync: write failed on \"/desk/data/x\": No space left on device (28)\n", "no space left"),
        (20, "rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20)\n", "run the same command again to resume"),
        (5, "@ERROR: something odd\n", "rsync failed with exit code 5: @ERROR: something odd"),
    ],
)
def test_explain_failure_messages(code, errors, expected):
    message = explain_failure(code, errors, parse_car("pi@127.0.0.1:nocar"), SshSettings())

    assert expected in message
    assert "\n" not in message
