"""``models/index.json``: one summary line per trained model of a car.

The index is rebuilt from the sidecars in ``models/`` after every training,
so it lists every model whose sidecar is valid, including models copied in
by hand. Sidecars that fail validation are left out with a warning.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from autodrive.train.sidecar import SidecarError, load_sidecar

log = logging.getLogger(__name__)

INDEX_NAME = "index.json"
INDEX_VERSION = 1


def summarize(sidecar: dict[str, Any]) -> dict[str, Any]:
    """Return the index entry of one model from its sidecar."""
    training = sidecar.get("training", {})
    records = training.get("records", {})
    metrics = training.get("metrics", {})
    return {
        "name": sidecar["name"],
        "type": sidecar["type"],
        "created": sidecar["created"],
        "files": sidecar["files"],
        "tubs": training.get("tubs", []),
        "train_records": records.get("train"),
        "validation_records": records.get("validation"),
        "epochs": training.get("epochs"),
        "val_angle_mae": metrics.get("val_angle_mae"),
        "val_throttle_mae": metrics.get("val_throttle_mae"),
        "quantize": training.get("quantize"),
    }


def scan_models(models_dir: Path) -> list[dict[str, Any]]:
    """Return the index entries of every valid sidecar in ``models_dir``, oldest first."""
    entries = []
    for path in sorted(models_dir.glob("*.json")):
        if path.name == INDEX_NAME:
            continue
        try:
            entries.append(summarize(load_sidecar(path)))
        except SidecarError as error:
            log.warning("left out of the model index: %s", error)
    entries.sort(key=lambda entry: (entry["created"], entry["name"]))
    return entries


def write_index(models_dir: Path) -> Path:
    """Rebuild ``models_dir/index.json`` from the sidecars and return its path.

    The file is written to a temporary name and renamed, so a reader never
    sees half an index.
    """
    path = models_dir / INDEX_NAME
    data = {"autodrive_models": INDEX_VERSION, "models": scan_models(models_dir)}
    temporary = path.with_name(f".{INDEX_NAME}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_index(models_dir: Path) -> list[dict[str, Any]]:
    """Return the entries of ``models_dir/index.json``, or scan the sidecars when it is missing or unreadable."""
    path = models_dir / INDEX_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return list(data["models"])
    except FileNotFoundError:
        return scan_models(models_dir)
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("cannot read %s (%s); listing the sidecars instead", path, error)
        return scan_models(models_dir)
