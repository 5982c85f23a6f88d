"""autodrive sync with a user@host:path car, against a real sshd listening on 127.0.0.1.

The fixture starts /usr/sbin/sshd with its own host key, config and
authorized key in a temporary folder, so the tests reach the "car" over ssh
exactly as they would reach a Raspberry Pi.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autodrive.sync import SshSettings, SyncError, pull, push
from test_sync import REAL_RECORDS, append_records, make_car, make_models, mark_deleted, read_manifest, tree_state

REPO = Path(__file__).resolve().parents[1]
SSHD = Path("/usr/sbin/sshd")

pytestmark = pytest.mark.skipif(
    shutil.which("rsync") is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
    reason="rsync and the OpenSSH client are needed (apt install rsync openssh-client)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """Start sshd on 127.0.0.1 and return (login, SshSettings) for reaching it."""
    if not SSHD.exists():
        pytest.skip("sshd is not installed (apt install openssh-server)")
    privilege_separation = Path("/run/sshd")
    if not privilege_separation.is_dir():
        if os.geteuid() != 0:
            pytest.skip("sshd needs /run/sshd, which only root can create here")
        privilege_separation.mkdir(mode=0o755, parents=True)

    folder = tmp_path_factory.mktemp("sshd")
    _keygen(folder / "host_key")
    _keygen(folder / "client_key")
    _keygen(folder / "other_key")
    authorized = folder / "authorized_keys"
    authorized.write_text((folder / "client_key.pub").read_text())
    authorized.chmod(0o600)
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_key'}",
                f"AuthorizedKeysFile {authorized}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                f"PidFile {folder / 'sshd.pid'}",
                "LogLevel ERROR",
            ]
        )
        + "\n"
    )
    log_file = (folder / "sshd.log").open("w")
    server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config), "-p", str(port)], stdout=log_file, stderr=subprocess.STDOUT)

    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            pytest.skip(f"sshd could not start: {(folder / 'sshd.log').read_text().strip()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                pytest.skip("sshd did not accept connections on 127.0.0.1")
            time.sleep(0.05)

    options = (
        "-F", "/dev/null",
        "-i", str(folder / "client_key"),
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={folder / 'known_hosts'}",
        "-o", "StrictHostKeyChecking=accept-new",
    )
    yield f"{getpass.getuser()}@127.0.0.1", SshSettings(port=port, options=options), folder
    server.terminate()
    server.wait(timeout=10)
    log_file.close()


def test_ssh_pull_then_pull_again_keeps_deletions(tmp_path, sshd):
    login, ssh, _ = sshd
    car = make_car(tmp_path)
    desk = tmp_path / "desk"

    first = pull(f"{login}:{car}", desk, ssh=ssh)

    local = desk / "data"
    assert len(first.files) == REAL_RECORDS + 4
    assert read_manifest(local) == read_manifest(car / "data")
    mark_deleted(local, {10, 11})
    new = append_records(car / "data", 6, update_manifests=False, truncated_tail=True)

    second = pull(f"{login}:{car}", desk, ssh=ssh)

    assert {f"images/{index}_cam_image_array_.jpg" for index in new} <= set(second.files)
    assert read_manifest(local)[4]["deleted_indexes"] == [10, 11]
    from autodrive.tub import open_tub

    tub = open_tub(local)
    assert len(tub) == REAL_RECORDS + len(new) - 2


def test_ssh_pull_dry_run_changes_nothing(tmp_path, sshd):
    login, ssh, _ = sshd
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    pull(f"{login}:{car}", desk, ssh=ssh)
    new = append_records(car / "data", 3)
    before = tree_state(desk)

    report = pull(f"{login}:{car}", desk, ssh=ssh, dry_run=True)

    assert tree_state(desk) == before
    assert {f"images/{index}_cam_image_array_.jpg" for index in new} <= set(report.files)


def test_ssh_push_from_cli_with_sync_car(tmp_path, sshd):
    login, ssh, _ = sshd
    car = make_car(tmp_path)
    desk = tmp_path / "desk"
    models = make_models(desk)
    options = ", ".join(f'"{option}"' for option in ssh.options)
    (desk / "myconfig.yaml").write_text(f"sync:\n  car: {login}:{car}\n  ssh_port: {ssh.port}\n  ssh_options: [{options}]\n")

    result = subprocess.run(
        [sys.executable, "-m", "autodrive", "sync", "push", "--car", str(desk)],
        capture_output=True, text=True, cwd=REPO, timeout=120, stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 0, result.stderr
    assert "pushed model newest" in result.stdout
    assert (car / "models" / "newest.tflite").read_bytes() == (models / "newest.tflite").read_bytes()
    assert (car / "models" / "newest.json").is_file()
    assert not (car / "models" / "newest.keras").exists()


def test_ssh_push_api_reports_files(tmp_path, sshd):
    login, ssh, _ = sshd
    car = make_car(tmp_path)
    models = make_models(tmp_path / "desk")

    report = push(f"{login}:{car}", models, model="older", all_files=True, ssh=ssh)

    assert sorted(report.files) == ["older.json", "older.keras", "older.tflite"]
    assert report.destination == f"{login}:{car}/models/"


def test_ssh_error_wrong_path(tmp_path, sshd):
    login, ssh, _ = sshd
    missing = tmp_path / "no-such-car"

    with pytest.raises(SyncError) as error:
        pull(f"{login}:{missing}", tmp_path / "desk", ssh=ssh)

    assert str(error.value).startswith(f"{missing}/data not found on {login}")
    assert "sync.car" in str(error.value)


def test_ssh_error_push_wrong_path(tmp_path, sshd):
    login, ssh, _ = sshd
    models = make_models(tmp_path / "desk")
    missing = tmp_path / "no-such-car"

    with pytest.raises(SyncError) as error:
        push(f"{login}:{missing}", models, ssh=ssh)

    assert str(error.value).startswith(f"{missing}/models not found on {login}")


def test_ssh_error_key_not_accepted(tmp_path, sshd):
    login, ssh, folder = sshd
    car = make_car(tmp_path)
    options = tuple(str(folder / "other_key") if option.endswith("client_key") else option for option in ssh.options)

    with pytest.raises(SyncError) as error:
        pull(f"{login}:{car}", tmp_path / "desk", ssh=SshSettings(port=ssh.port, options=options))

    assert "permission denied" in str(error.value)
    assert f"ssh-copy-id -p {ssh.port} {login}" in str(error.value)
