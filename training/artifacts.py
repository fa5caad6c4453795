"""Model artifacts: ``models/NAME/`` holds model.joblib, metadata.json and report/.

The metadata says everything needed to trust and use the model: feature names
and order, library versions, training window, data fingerprint, metrics, and the
decision thresholds with how they were chosen. ``version`` is stamped on every
scored row.
"""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, Sequence

import joblib
import numpy as np
import pandas as pd

from fraud.schemas import ID_COLUMNS, ID_FIELDS

MODEL_FILE, METADATA_FILE = "model.joblib", "metadata.json"
LIBRARIES = ("scikit-learn", "numpy", "pandas", "pyspark", "joblib")


@dataclass(frozen=True)
class ModelArtifact:
    model: Any
    metadata: dict[str, Any]

    @property
    def version(self) -> str:
        return self.metadata["version"]

    @property
    def features(self) -> list[str]:
        return self.metadata["features"]

    @property
    def categorical(self) -> list[str]:
        """The features among ``features`` that are categories (text): a source mapping's own categorical ones."""
        return self.metadata.get("categorical", [])

    @property
    def thresholds(self) -> dict[str, float]:
        return {name: spec["value"] for name, spec in self.metadata["thresholds"].items()}

    def inputs(self, frame: pd.DataFrame) -> np.ndarray | pd.DataFrame:
        """``model_inputs`` of ``frame`` (a pandas frame with every feature) for this model."""
        return model_inputs(frame, self.features, self.categorical)


def model_inputs(frame: pd.DataFrame, features: list[str],
                 categorical: Sequence[str] = ()) -> np.ndarray | pd.DataFrame:
    """The model's inputs: ``features`` of ``frame`` as floats rounded to 1e-9, a matrix; with ``categorical``
    features (text), a DataFrame of ``features`` where those stay text (null: NaN) for the model's encoder.

    The Spark features and their numpy twin (the stream) agree to about 1e-13, but a
    tree split placed between two values that close (1.0 and 1.0000000000000002, say)
    would still send them different ways; rounding gives both paths the same inputs.

    Raises ValueError when ``features`` names an id (transaction, card, terminal: text, never a model input).
    """
    ids = sorted(set(features) & {*ID_COLUMNS, *ID_FIELDS})
    if ids:
        raise ValueError(f"ids are not model inputs: {ids}")
    numbers = [name for name in features if name not in categorical]
    matrix = np.round(frame[numbers].to_numpy(dtype=float), 9)
    if not categorical:
        return matrix
    inputs = pd.DataFrame(matrix, columns=numbers, index=frame.index)
    for name in categorical:
        inputs[name] = frame[name].astype(object).where(frame[name].notna(), np.nan)
    return inputs[features]


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), **{name: package_metadata.version(name) for name in LIBRARIES}}


def fingerprint(path: str | Path) -> str:
    """sha256 over the bytes of the file, or of every file under the folder in name order."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()):
        digest.update(str(file.relative_to(root) if file != root else file.name).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def save_model(directory: str | Path, model: Any, metadata: dict[str, Any]) -> ModelArtifact:
    """Write the model and its metadata; the version is the name plus a hash of the model bytes."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / MODEL_FILE, compress=3)
    model_hash = hashlib.sha256((out / MODEL_FILE).read_bytes()).hexdigest()[:12]
    metadata = {"version": f"{out.name}-{model_hash}", **metadata}
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return ModelArtifact(model, metadata)


def load_model(directory: str | Path) -> ModelArtifact:
    """The model and metadata saved in ``directory``. Raises FileNotFoundError when it is not a model folder."""
    folder = Path(directory)
    if not (folder / MODEL_FILE).exists() or not (folder / METADATA_FILE).exists():
        raise FileNotFoundError(f"{folder} is not a model folder (needs {MODEL_FILE} and {METADATA_FILE})")
    return ModelArtifact(joblib.load(folder / MODEL_FILE), json.loads((folder / METADATA_FILE).read_text()))
