"""Copy tubs from the car and models to it with rsync.

``pull`` brings the car's tub folder (``recording.tub``, default ``data``)
into the local car folder, and ``push`` sends a model's ``.tflite`` and
``.json`` files into the car's ``models/``. The car is ``user@host:path``
(rsync over ssh) or a local folder. rsync does every copy over the network;
this module builds its command lines, reads its output and turns its failures
into one-line messages.

A pull runs in three steps, so that a tub still being written on the car and
a pull that is interrupted both leave a tub the reader accepts:

1. The car's tub indexes (``manifest.json``, ``catalog_N.catalog`` and
   ``catalog_N.catalog_manifest``) are copied into a staging folder,
   ``.autodrive-sync/pull/`` in the local car folder.
2. Everything else (images, legacy ``record_N.json`` files) is copied into
   the local tub folder. The car writes an image before the catalog line that
   names it, so every line of the staged catalogs has its image by now.
3. The staged catalogs replace the local ones, and each tub's ``manifest.json``
   is merged. Lines 1 to 4 come from the car. ``deleted_indexes`` keeps every
   deletion and restore made on the desktop, and adds the deletions that are
   new on the car since the previous pull.

Interrupted transfers resume: rsync keeps partly copied files in
``.rsync-partial`` folders and uses them as the basis of the next run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Sequence

from autodrive.errors import AutodriveError, NotAvailableError

log = logging.getLogger(__name__)

MIN_RSYNC_VERSION = (3, 1, 0)
PARTIAL_DIR = ".rsync-partial"
STAGING_DIR = Path(".autodrive-sync") / "pull"
MERGED_DELETIONS_FILE = "car_deleted_indexes.json"
MODEL_FILES = (".tflite", ".json")
MODEL_FILES_ALL = (".tflite", ".json", ".keras")

# Tub v2 index files; everything else in a tub folder is data that never changes once written.
INDEX_PATTERNS = ("manifest.json", "catalog_*.catalog", "catalog_*.catalog_manifest")
_CATALOG_NAME = re.compile(r"^catalog_(\d+)\.catalog$")

# "%i %n%L" lines: the change summary (">f+++++++++"), a space, the path.
_ITEMIZED_LINE = re.compile(r"^(?P<change>[<>ch.*][fdLDS][.+?a-zA-Z ]{9,10}) (?P<name>.+)$")
_PROGRESS_LINE = re.compile(r"^\s*[\d,.]+[KMGT]?\s+\d+%")
_STATS_LINE = re.compile(r"^(?P<key>[A-Z][A-Za-z ]+): (?P<value>[\d,.]+)")
_REMOTE = re.compile(r"^(?P<host>(?:[^@/:\s]+@)?(?:\[[0-9a-fA-F:.]+\]|[^@/:\s\[\]]+)):(?P<path>.*)$")


class SyncError(AutodriveError, RuntimeError):
    """A copy between the car and this computer failed; the message names the next step."""


@dataclass(frozen=True)
class Endpoint:
    """The car side of a sync: ``user@host:path`` over ssh, or a local folder."""

    text: str
    host: str | None  # "user@host" or "host"; None for a local folder
    path: str

    @property
    def is_remote(self) -> bool:
        return self.host is not None

    def rsync_path(self, relative: str) -> str:
        """Return the rsync argument for ``relative`` inside the car folder, ending in '/'."""
        base = self.path or "."
        joined = relative if relative.startswith("/") else f"{base.rstrip('/')}/{relative}"
        joined = joined.rstrip("/") + "/"
        return f"{self.host}:{joined}" if self.host else joined

    def describe(self, relative: str = "") -> str:
        """Return ``relative`` inside the car folder as a person would type it."""
        return self.rsync_path(relative).rstrip("/") if relative else self.text


def parse_car(text: str) -> Endpoint:
    """Parse a CAR argument: ``user@host:path``, ``host:path`` or a local folder.

    As in rsync, a colon before the first slash makes it remote; ``./a:b``
    is a local folder. ``rsync://`` and ``host::module`` daemon forms are
    rejected because the car runs no rsync daemon.
    """
    text = text.strip()
    if not text:
        raise SyncError("the car location is empty; give user@host:path or a local folder")
    if text.startswith("rsync://") or re.match(r"^[^/]*::", text):
        raise SyncError(f"{text!r} names an rsync daemon, which the car does not run; use user@host:path (ssh) instead")

    match = _REMOTE.match(text)
    if match is None:
        # Absolute, so that rsync never reads a colon in a local name as a host.
        return Endpoint(text=text, host=None, path=str(Path(text).expanduser().absolute()))
    return Endpoint(text=text, host=match["host"], path=match["path"])


@dataclass(frozen=True)
class SshSettings:
    """Settings of the ssh connection that rsync opens to a remote car."""

    port: int = 22
    options: tuple[str, ...] = ()  # extra ssh arguments, e.g. ("-i", "~/.ssh/car_key")
    connect_timeout_s: int = 10
    batch_mode: bool = True  # no password prompts; False lets a person type one


@dataclass
class TransferResult:
    """Summary of the files that one rsync run copied."""

    files: list[str] = field(default_factory=list)  # paths relative to the destination
    bytes_total: int = 0  # size of the files copied, before delta compression
    bytes_matched: int = 0  # bytes that were already on the receiving side (resumed or unchanged)
    vanished: bool = False  # some source files disappeared during the copy (exit code 24)


@dataclass
class TubMerge:
    """The manifest.json merge of one pulled tub."""

    path: Path
    deleted_indexes: list[int]
    new_car_deletions: list[int]


@dataclass
class PullReport:
    """Summary of a pull: the files copied (or, in a dry run, to be copied) and the merged tubs."""

    source: str
    destination: Path
    files: list[str]
    bytes_total: int
    bytes_matched: int
    tubs: list[TubMerge]
    dry_run: bool


@dataclass
class PushReport:
    """Summary of a push: the model and the files copied (or, in a dry run, to be copied)."""

    model: str
    destination: str
    files: list[str]
    bytes_total: int
    dry_run: bool


# -- rsync itself -------------------------------------------------------------


def find_rsync() -> str:
    """Return the path of an rsync new enough for resumable copies with progress.

    Raises NotAvailableError when rsync is missing or older than 3.1 (as
    macOS ships, 2.6.9), which lacks ``--info=progress2``.
    """
    path = shutil.which("rsync")
    if path is None:
        raise NotAvailableError(
            "rsync not found on PATH; install it (Debian, Ubuntu, Raspberry Pi OS: sudo apt install rsync; macOS: brew install rsync)"
        )

    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"version\s+(\d+)\.(\d+)\.(\d+)", output)
    if match is None:
        log.warning("could not read the version of %s; assuming it is recent", path)
        return path
    version = tuple(int(part) for part in match.groups())
    if version < MIN_RSYNC_VERSION:
        raise NotAvailableError(
            f"{path} is rsync {'.'.join(map(str, version))}, older than 3.1.0; "
            "install a newer rsync (macOS: brew install rsync)"
        )
    return path


def _require_ssh() -> None:
    if shutil.which("ssh") is None:
        raise NotAvailableError(
            "ssh not found on PATH, and a user@host:path car needs it; install the OpenSSH client "
            "(sudo apt install openssh-client)"
        )


def ssh_command(ssh: SshSettings) -> str:
    """Return the ``-e`` argument of rsync: the ssh command line with its options."""
    words = ["ssh", "-p", str(ssh.port), "-o", f"ConnectTimeout={ssh.connect_timeout_s}"]
    # A car that drops off Wi-Fi ends the copy after about 15 s instead of hanging.
    words += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
    if ssh.batch_mode:
        words += ["-o", "BatchMode=yes"]
    words += [os.path.expanduser(word) for word in ssh.options]
    return shlex.join(words)


def rsync_command(
    rsync: str,
    sources: Sequence[str],
    destination: str,
    *,
    filters: Sequence[str] = (),
    ssh: SshSettings | None = None,
    dry_run: bool = False,
    progress: bool = False,
    bandwidth_limit_kbps: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """Build one rsync command line.

    Every copy keeps interrupted files in ``.rsync-partial`` and resumes from
    them (``--no-whole-file`` makes rsync use them even between local
    folders), lists each copied file, and ends with statistics.
    """
    command = [
        rsync,
        "--archive",
        "--no-whole-file",
        f"--partial-dir={PARTIAL_DIR}",
        "--out-format=%i %n%L",
        "--stats",
    ]
    if progress:
        command.append("--info=progress2")
    if dry_run:
        command.append("--dry-run")
    if bandwidth_limit_kbps:
        command.append(f"--bwlimit={bandwidth_limit_kbps}")
    if ssh is not None:
        command += ["-e", ssh_command(ssh)]
    command += list(extra)
    command += list(filters)
    command += list(sources)
    command.append(destination)
    return command


def run_rsync(command: list[str], endpoint: Endpoint, ssh: SshSettings | None, progress_stream: IO[str] | None = None) -> TransferResult:
    """Run rsync, echo its progress to ``progress_stream``, and return what it copied.

    Raises SyncError with a one-line explanation when rsync fails. Exit code
    24 (source files vanished during the copy) is not an error: the car may
    be recording while it is pulled.
    """
    log.debug("running %s", shlex.join(command))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    error_chunks: list[bytes] = []
    error_reader = threading.Thread(target=lambda: error_chunks.append(process.stderr.read()), daemon=True)
    error_reader.start()

    result = TransferResult()
    try:
        _read_output(process.stdout, result, progress_stream)
        returncode = process.wait()
    except KeyboardInterrupt:
        # Ctrl-C reaches rsync too: it moves the partly copied file into .rsync-partial.
        process.wait()
        log.warning("copy interrupted; partly copied files are kept, run the same command again to resume")
        raise
    error_reader.join()
    errors = b"".join(error_chunks).decode("utf-8", "replace")

    if returncode == 24:
        log.warning("some files vanished on the car during the copy (the car is probably recording)")
        result.vanished = True
        return result
    if returncode != 0:
        for line in errors.splitlines():
            log.debug("rsync: %s", line)
        raise SyncError(explain_failure(returncode, errors, endpoint, ssh))
    return result


def _read_output(stream: IO[bytes], result: TransferResult, progress_stream: IO[str] | None) -> None:
    # rsync ends progress updates with '\r' and every other line with '\n'.
    buffer = b""
    showing_progress = False
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            break
        buffer += chunk
        parts = re.split(rb"[\r\n]", buffer)
        buffer = parts.pop()
        for part in parts:
            line = part.decode("utf-8", "replace")
            if _PROGRESS_LINE.match(line):
                if progress_stream is not None:
                    progress_stream.write("\r" + line.strip().ljust(60))
                    progress_stream.flush()
                    showing_progress = True
                continue
            _parse_line(line, result)
    if buffer:
        _parse_line(buffer.decode("utf-8", "replace"), result)
    if showing_progress and progress_stream is not None:
        progress_stream.write("\n")
        progress_stream.flush()


def _parse_line(line: str, result: TransferResult) -> None:
    itemized = _ITEMIZED_LINE.match(line)
    if itemized:
        change = itemized["change"]
        if change[0] in "<>" and change[1] == "f":
            result.files.append(itemized["name"])
        return

    stats = _STATS_LINE.match(line)
    if stats:
        value = int(float(stats["value"].replace(",", "")))
        if stats["key"] == "Total transferred file size":
            result.bytes_total += value
        elif stats["key"] == "Matched data":
            result.bytes_matched += value


def explain_failure(returncode: int, errors: str, endpoint: Endpoint, ssh: SshSettings | None) -> str:
    """Turn rsync's exit code and error output into one line that names the failure and the next step."""
    port = ssh.port if ssh else 22
    host = endpoint.host or "the car"
    bare_host = host.split("@", 1)[-1]
    login = f"ssh -p {port} {host}"

    if "Failed to exec ssh" in errors:
        return "ssh not found on PATH; install the OpenSSH client (sudo apt install openssh-client)"
    if "Connection refused" in errors:
        return (
            f"cannot connect to {bare_host} port {port}: connection refused; check that the car is on, "
            f"that its SSH server runs, and that sync.ssh_port ({port}) is its SSH port"
        )
    if "Could not resolve hostname" in errors:
        return f"host {bare_host!r} not found; check the car's name or IP address in CAR or sync.car"
    if re.search(r"timed out|No route to host|Network is unreachable", errors):
        return f"cannot reach {bare_host} port {port} (timed out or no route); check that the car is on and on the same network"
    if "Host key verification failed" in errors:
        return f"the SSH host key of {bare_host} is unknown or changed; check it by logging in once with: {login}"
    if "Permission denied (" in errors and returncode in (12, 255):
        return f"SSH login to {host} failed (permission denied); copy your key to the car with: ssh-copy-id -p {port} {host}"
    if re.search(r"rsync: (command )?not found|rsync: No such file or directory", errors) and returncode in (12, 127):
        return "rsync is not installed on the car; install it there with: sudo apt install rsync"
    if "No space left on device" in errors:
        return f"no space left on the receiving side ({_first_error_line(errors)}); free some space and run the command again"

    missing = re.search(r'(?:change_dir|link_stat|mkdir) "([^"]*)".* failed: No such file or directory', errors)
    if missing and returncode in (3, 11, 23):
        where = host if endpoint.is_remote else "this computer"
        return f"{missing[1]} not found on {where}; check the car folder path in CAR or sync.car ({endpoint.text})"
    if returncode == 20:
        return "rsync was stopped by a signal; run the same command again to resume"
    if returncode in (30, 35):
        return f"the copy timed out talking to {host}; check the connection and run the same command again to resume"
    if returncode in (12, 255):
        return f"the connection to {host} failed ({_first_error_line(errors)}); check that you can log in with: {login}"
    return f"rsync failed with exit code {returncode}: {_first_error_line(errors)}"


def _first_error_line(errors: str) -> str:
    lines = [line.strip() for line in errors.splitlines() if line.strip()]
    for line in lines:
        if not line.startswith("rsync error:") and "connection unexpectedly closed" not in line:
            return line
    return lines[0] if lines else "no error output"


# -- pull ---------------------------------------------------------------------


def pull(
    car: str,
    car_path: Path,
    tub_folder: str = "data",
    *,
    ssh: SshSettings | None = None,
    dry_run: bool = False,
    progress_stream: IO[str] | None = None,
    bandwidth_limit_kbps: int | None = None,
) -> PullReport:
    """Copy the car's tub folder into ``car_path / tub_folder``, keeping local deletions.

    ``tub_folder`` is relative to the car folder on both sides. With
    ``dry_run`` nothing changes on disk; the report lists what would be copied.
    """
    endpoint = parse_car(car)
    rsync = find_rsync()
    ssh = ssh or SshSettings()
    ssh_for_rsync = ssh if endpoint.is_remote else None
    if endpoint.is_remote:
        _require_ssh()
    else:
        _check_local_source(endpoint, tub_folder)

    car_path = Path(car_path).expanduser().absolute()
    destination = car_path / tub_folder
    staging = car_path / STAGING_DIR / _staging_name(tub_folder)
    source = endpoint.rsync_path(tub_folder)
    common = dict(ssh=ssh_for_rsync, dry_run=dry_run, bandwidth_limit_kbps=bandwidth_limit_kbps)
    if not dry_run:
        staging.mkdir(parents=True, exist_ok=True)
        destination.mkdir(parents=True, exist_ok=True)

    # Step 1: the indexes, into staging.
    index_filters = [f"--exclude={PARTIAL_DIR}/", "--include=*/"]
    index_filters += [f"--include={pattern}" for pattern in INDEX_PATTERNS]
    index_filters += ["--exclude=*", "--prune-empty-dirs"]
    log.info("copying tub indexes from %s", endpoint.describe(tub_folder))
    indexes = run_rsync(rsync_command(rsync, [source], f"{staging}/", filters=index_filters, **common), endpoint, ssh_for_rsync)
    if not dry_run:
        _check_same_tubs(staging, destination, endpoint.describe(tub_folder))

    # Step 2: images and every other file, straight into the local tub folder.
    data_filters = [f"--exclude={pattern}" for pattern in INDEX_PATTERNS]
    log.info("copying images from %s to %s", endpoint.describe(tub_folder), destination)
    data = run_rsync(
        rsync_command(rsync, [source], f"{destination}/", filters=data_filters, progress=progress_stream is not None, **common),
        endpoint,
        ssh_for_rsync,
        progress_stream,
    )

    # Step 3: install the staged catalogs, then merge each manifest.json.
    merges: list[TubMerge] = []
    if not dry_run:
        install_filters = ["--exclude=manifest.json", f"--exclude={MERGED_DELETIONS_FILE}"]
        staged = Endpoint(text=str(staging), host=None, path=str(staging))
        run_rsync(rsync_command(rsync, [f"{staging}/"], f"{destination}/", filters=install_filters), staged, None)
        for manifest in sorted(staging.rglob("manifest.json")):
            relative = manifest.parent.relative_to(staging)
            merges.append(merge_tub(manifest.parent, destination / relative))

    files = sorted(set(indexes.files) | set(data.files), key=_file_order)
    return PullReport(
        source=endpoint.describe(tub_folder),
        destination=destination,
        files=files,
        bytes_total=indexes.bytes_total + data.bytes_total,
        bytes_matched=indexes.bytes_matched + data.bytes_matched,
        tubs=merges,
        dry_run=dry_run,
    )


def _staging_name(tub_folder: str) -> str:
    # One staging folder per tub folder, so pulling another recording.tub keeps both.
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", tub_folder.strip("/")) or "data"
    return name


def _file_order(name: str) -> tuple[str, int, str]:
    folder, _, base = name.rpartition("/")
    number = re.match(r"^(\d+)_", base)
    return (folder, int(number[1]) if number else -1, base)


def _check_local_source(endpoint: Endpoint, tub_folder: str) -> None:
    car = Path(endpoint.path).expanduser()
    if not car.is_dir():
        raise SyncError(f"car folder {endpoint.path} not found; give the car as user@host:path or an existing folder")
    tubs = car / tub_folder
    if not tubs.is_dir():
        raise SyncError(
            f"{tubs} not found: the car has recorded nothing yet, or recording.tub ({tub_folder!r}) differs on the car"
        )


# -- manifest.json merge ------------------------------------------------------


def read_manifest(path: Path) -> list | None:
    """Return the five JSON lines of a Tub v2 manifest.json, or None when it is unreadable.

    The car rewrites manifest.json in place, so a pull can catch it empty or
    half written; the caller then keeps the local copy.
    """
    try:
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if len(lines) < 5 or not isinstance(lines[4], dict):
        return None
    return lines


def _created_at(manifest: list) -> float | None:
    metadata = manifest[3] if isinstance(manifest[3], dict) else {}
    return metadata.get("created_at")


def _check_same_tubs(staging: Path, destination: Path, source: str) -> None:
    """Raise SyncError when a local tub and the car's tub at the same path are different recordings.

    Copying the car's catalogs over another recording would mix the two, so
    the pull stops before any image is copied.
    """
    for manifest in staging.rglob("manifest.json"):
        relative = manifest.parent.relative_to(staging)
        local = read_manifest(destination / relative / "manifest.json")
        car = read_manifest(manifest)
        if local is None or car is None:
            continue
        if _created_at(local) is not None and _created_at(car) is not None and _created_at(local) != _created_at(car):
            local_tub = destination / relative
            raise SyncError(
                f"the tub {source}/{relative} on the car is a different recording from {local_tub} here "
                f"(created at {_created_at(car)} versus {_created_at(local)}); move the local one away "
                f"(mv {local_tub} {local_tub}-old) and pull again"
            )


def merge_tub(staged: Path, local: Path) -> TubMerge:
    """Write ``local/manifest.json`` from the car's staged manifest and the local one.

    Lines 1 to 4 (inputs, types, metadata, created_at and sessions) come from
    the car. Line 5 lists every catalog found on either side, the larger
    ``current_index``, and as ``deleted_indexes`` the local deletions plus
    the deletions that are new on the car since the previous pull. A record
    restored on the desktop therefore stays restored, unless the car deletes
    it again later.
    """
    car = read_manifest(staged / "manifest.json")
    local_manifest = read_manifest(local / "manifest.json")
    merged_file = staged / MERGED_DELETIONS_FILE

    if car is None:
        if local_manifest is None:
            # Neither side has a readable manifest: keep the car's bytes; the reader rebuilds the indexes from the catalogs.
            shutil.copy2(staged / "manifest.json", local / "manifest.json")
            log.warning("manifest.json of %s is unreadable on the car; copied it unchanged", local)
            return TubMerge(local, [], [])
        log.warning("manifest.json of %s was being rewritten on the car; kept the local one, pull again later", local)
        car = local_manifest

    car_deleted = set(car[4].get("deleted_indexes") or [])
    merged_before = _read_merged_deletions(merged_file, _created_at(car))
    new_car_deletions = car_deleted - merged_before
    if local_manifest is None:
        deleted = set(car_deleted)
        local_paths: list[str] = []
        local_index = 0
    else:
        deleted = set(local_manifest[4].get("deleted_indexes") or []) | new_car_deletions
        local_paths = list(local_manifest[4].get("paths") or [])
        local_index = int(local_manifest[4].get("current_index") or 0)

    catalog_info = dict(car[4])
    catalog_info["paths"] = _merge_paths(list(car[4].get("paths") or []), local_paths, local)
    catalog_info["current_index"] = max(int(car[4].get("current_index") or 0), local_index)
    catalog_info["deleted_indexes"] = sorted(deleted)

    text = "".join(json.dumps(line) + "\n" for line in [*car[:4], catalog_info])
    _write_atomically(local / "manifest.json", text)
    _write_atomically(merged_file, json.dumps({"created_at": _created_at(car), "deleted_indexes": sorted(car_deleted)}) + "\n")
    log.info("merged manifest.json of %s: %d deleted records (%d newly deleted on the car)", local, len(deleted), len(new_car_deletions))
    return TubMerge(local, sorted(deleted), sorted(new_car_deletions))


def _read_merged_deletions(path: Path, created_at: float | None) -> set[int]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return set()
    if data.get("created_at") != created_at:
        return set()
    return set(data.get("deleted_indexes") or [])


def _merge_paths(car_paths: list[str], local_paths: list[str], local: Path) -> list[str]:
    # A manifest written before the car started a new catalog does not list it yet.
    paths = list(car_paths)
    on_disk = sorted(
        (int(match[1]), file.name) for file in local.iterdir() if (match := _CATALOG_NAME.match(file.name))
    )
    for name in [*local_paths, *(name for _, name in on_disk)]:
        if name not in paths:
            paths.append(name)
    return paths


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# -- push ---------------------------------------------------------------------


def find_model(models_dir: Path, name: str | None, all_files: bool) -> tuple[str, list[Path]]:
    """Return a model's name and the files to push: ``.tflite`` and ``.json``, plus ``.keras`` with ``all_files``.

    Without ``name``, the model whose ``.tflite`` (or, with ``all_files``,
    ``.keras``) file is newest is chosen.
    """
    if not models_dir.is_dir():
        raise SyncError(f"{models_dir} not found; train a model first with 'autodrive train'")
    suffixes = MODEL_FILES_ALL if all_files else MODEL_FILES
    runnable = (".tflite", ".keras") if all_files else (".tflite",)

    if name is None:
        candidates = [file for file in models_dir.iterdir() if file.suffix in runnable and file.is_file()]
        if not candidates:
            kinds = " or ".join(runnable)
            raise SyncError(f"no {kinds} model in {models_dir}; train one with 'autodrive train' or name one with --model")
        name = max(candidates, key=lambda file: file.stat().st_mtime).stem
    else:
        name = Path(name).name
        if Path(name).suffix in MODEL_FILES_ALL:
            name = Path(name).stem

    files = [models_dir / f"{name}{suffix}" for suffix in suffixes if (models_dir / f"{name}{suffix}").is_file()]
    if not any(file.suffix in runnable for file in files):
        known = sorted({file.stem for file in models_dir.iterdir() if file.suffix in MODEL_FILES_ALL})
        hint = f"models here: {', '.join(known)}" if known else "there are no models here yet"
        if not all_files and (models_dir / f"{name}.keras").is_file():
            hint = f"only {name}.keras exists; the car runs .tflite files, or add --all-files to push the .keras file"
        raise SyncError(f"{models_dir / name}.tflite not found ({hint})")
    if not any(file.suffix == ".json" for file in files):
        log.warning("%s has no .json sidecar; the car then needs pilot.donkey_type to run it", name)
    return name, files


def push(
    car: str,
    models_dir: Path,
    *,
    model: str | None = None,
    all_files: bool = False,
    ssh: SshSettings | None = None,
    dry_run: bool = False,
    progress_stream: IO[str] | None = None,
    bandwidth_limit_kbps: int | None = None,
) -> PushReport:
    """Copy one model's files from ``models_dir`` into the car's ``models/`` folder.

    The files replace the car's copies together at the end of the copy
    (``--delay-updates``), so a car that reloads a changed model never reads
    a half-written file.
    """
    endpoint = parse_car(car)
    rsync = find_rsync()
    ssh = ssh or SshSettings()
    if endpoint.is_remote:
        _require_ssh()
    elif not Path(endpoint.path).expanduser().is_dir():
        raise SyncError(f"car folder {endpoint.path} not found; give the car as user@host:path or an existing folder")

    name, files = find_model(Path(models_dir).expanduser().absolute(), model, all_files)
    destination = endpoint.rsync_path("models")
    log.info("pushing %s to %s", ", ".join(file.name for file in files), destination)
    command = rsync_command(
        rsync,
        [str(file) for file in files],
        destination,
        ssh=ssh if endpoint.is_remote else None,
        dry_run=dry_run,
        progress=progress_stream is not None,
        bandwidth_limit_kbps=bandwidth_limit_kbps,
        extra=["--delay-updates"],
    )
    result = run_rsync(command, endpoint, ssh if endpoint.is_remote else None, progress_stream)
    return PushReport(model=name, destination=destination, files=result.files, bytes_total=result.bytes_total, dry_run=dry_run)


def default_progress_stream() -> IO[str] | None:
    """Return stderr when it is a terminal, where progress lines can overwrite each other."""
    return sys.stderr if sys.stderr.isatty() else None
