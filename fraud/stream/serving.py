"""Model serving for the decision query: which model scores each micro-batch, hot reload, replay pinning.

The model is part of the decision query's plan (its pandas UDF carries the model as
one broadcast). A run of the query serves one model; when a newer model is
published, the stream stops the query between micro-batches and starts it again
from its checkpoint with the new model (``fraud.stream.queries``). The run log
(``model-runs.jsonl`` beside the checkpoint) records each run's first micro-batch and
model folder, so a micro-batch replayed after a crash is scored by the model that
scored it the first time, and yields the same records.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from fraud.config import PROJECT_ROOT, ConfigError, Settings
from fraud.schemas import OWN_PREFIX
from fraud.sources import SourceMapping
from training.artifacts import METADATA_FILE, ModelArtifact, load_model

log = logging.getLogger(__name__)


def model_folder(source: str | Path) -> Path:
    """``source`` as an absolute path (relative paths are under the project)."""
    return Path(source) if Path(source).is_absolute() else PROJECT_ROOT / source


def newest_model(source: str | Path) -> Path:
    """``source`` itself when it is a model folder, else its newest model folder (by metadata.json's time).

    Raises FileNotFoundError when there is none.
    """
    folder = model_folder(source)
    if (folder / METADATA_FILE).exists():
        return folder
    candidates = [p.parent for p in folder.glob(f"*/{METADATA_FILE}")]
    if not candidates:
        raise FileNotFoundError(f"no model under {folder} (a folder with {METADATA_FILE})")
    return max(candidates, key=lambda candidate: ((candidate / METADATA_FILE).stat().st_mtime, candidate.name))


def served_model(folder: Path, settings: Settings) -> ModelArtifact:
    """The model in ``folder`` with ``stream.review_threshold`` / ``block_threshold`` in place of its own, where
    set. Raises FileNotFoundError when ``folder`` is not a model folder."""
    artifact = load_model(folder)
    conf = settings.stream
    thresholds = dict(artifact.metadata["thresholds"])
    for name, value in (("review", conf.review_threshold), ("block", conf.block_threshold)):
        if value is not None:
            thresholds[name] = {"value": value, "how": f"configured (stream.{name}_threshold)"}
    return ModelArtifact(artifact.model, {**artifact.metadata, "thresholds": thresholds})


def unservable(folder: Path, mapping: SourceMapping | None = None) -> str | None:
    """Why the stream cannot serve the model in ``folder`` (a model folder) to messages read with the source
    ``mapping`` (None: the message contract), or None. A model trained with a source mapping's own features (its
    ``OWN_*`` inputs, ``fraud.sources``) needs the stream's mapping to give each of them, of the same kind (a number,
    or a category: metadata.json's ``categorical``); a model needing only the contract's fields scores any source."""
    metadata = json.loads((folder / METADATA_FILE).read_text())
    categorical = set(metadata.get("categorical", []))
    given = ({**dict.fromkeys(mapping.own_features, "a number"), **dict.fromkeys(mapping.own_categorical,
                                                                                   "a category")}
             if mapping is not None else {})
    missing = [name for name in metadata["features"] if name.startswith(OWN_PREFIX)
               and given.get(name) != ("a category" if name in categorical else "a number")]
    if not missing:
        return None
    kinds = ", ".join(f"{name} ({'a category' if name in categorical else 'a number'})" for name in missing)
    return (f"the model {folder} needs its source mapping's own features {missing}, and the stream's messages "
            + ("are read as the message contract's fields (no stream.source)" if mapping is None
               else "are read with a source mapping that does not give them so")
            + f": start the stream with the mapping the model was trained with (--source; its metadata.json, "
              f"'source', records it), giving {kinds}, or serve a model needing only the contract's fields "
              "(models/default scores any source)")


def check_servable(source: str | Path, mapping: SourceMapping | None = None) -> None:
    """Raise ConfigError (exit code 2, before a JVM starts) when there is no model under ``source``, its newest's
    metadata.json is not JSON with a list of features, or the stream cannot serve it to messages read with
    ``mapping`` (``unservable``)."""
    try:
        folder = newest_model(source)
    except FileNotFoundError as error:
        raise ConfigError(str(error)) from None
    try:
        why = unservable(folder, mapping)
    except (ValueError, KeyError, TypeError) as error:  # not JSON, or no list of features
        raise ConfigError(f"{folder / METADATA_FILE} is not a model's metadata ({type(error).__name__}: "
                          f"{str(error)[:200]})") from None
    if why is not None:
        raise ConfigError(why)


def batch_ids(folder: Path) -> list[int]:
    """The micro-batch ids of a checkpoint's offset or commit log (``folder``), in order; [] when there is none."""
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


def pending_batch(checkpoint: Path) -> int | None:
    """The micro-batch a query's checkpoint planned (offset log) but did not commit: the one a restart replays."""
    planned, committed = batch_ids(checkpoint / "offsets"), batch_ids(checkpoint / "commits")
    if planned and (not committed or planned[-1] > committed[-1]):
        return planned[-1]
    return None


def next_batch(checkpoint: Path) -> int:
    """The id of the micro-batch a restart of the query from ``checkpoint`` runs first."""
    pending = pending_batch(checkpoint)
    if pending is not None:
        return pending
    committed = batch_ids(checkpoint / "commits")
    return committed[-1] + 1 if committed else 0


class ModelRuns:
    """The run log of the decision query: (first micro-batch, model folder) per run, one JSON line each."""

    def __init__(self, log_file: Path, source: str | Path):
        self.log_file, self.source = log_file, source

    def runs(self) -> list[dict]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines() if line.strip()]

    def model_for_start(self, checkpoint: Path) -> Path:
        """The model of the run about to start from ``checkpoint``: the one that first ran the micro-batch the
        restart replays, if any; else the newest. Records the run. Raises FileNotFoundError when there is no
        model."""
        pending, runs = pending_batch(checkpoint), self.runs()
        earlier = [run for run in runs if pending is not None and run["first_batch"] <= pending]
        folder = Path(earlier[-1]["model"]) if earlier else newest_model(self.source)
        if earlier and not (folder / METADATA_FILE).exists():
            log.warning("micro-batch %d was scored by %s, which is gone: it is scored again by the newest model "
                        "(the result topic gets a second, different record for its transactions)", pending, folder)
            folder = newest_model(self.source)
        if not runs or Path(runs[-1]["model"]) != folder:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with self.log_file.open("a") as out:
                out.write(json.dumps({"first_batch": next_batch(checkpoint), "model": str(folder)}) + "\n")
        return folder

    def newer_than(self, serving: Path) -> Path | None:
        """The newest published model when it is not ``serving`` (a hot reload is due), else None."""
        newest = newest_model(self.source)
        return newest if newest != serving else None
