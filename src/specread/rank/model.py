"""Model folders: a trained ranker, the priors from its labels, and a manifest of how both were made.

``specread train`` writes one; ``predict``, ``read`` and ``serve`` read one (``--model DIR``, else
``$SPECREAD_MODEL``, else the packaged folder ``specread/data/model/``). A folder holds:

* ``model.json``, the manifest: ``format`` (1), the ``specread`` version that wrote it, the
  ``feature_names`` and ``entities`` order the ranker reads, the page-affecting ``ocr`` settings
  its pages were read with (:data:`PAGE_SETTINGS`), ``data`` fingerprints (labels file sha256,
  rows, images, group_ids), the ranker's ``params`` (seed included), validation ``metrics``, what
  the priors were built from (``priors_from``) and the sha256 of the two other ``files``;
* ``ranker.txt``: :meth:`CandidateRanker.save`;
* ``priors.json``: :meth:`Priors.save`;
* ``calibration.json`` (optional): :meth:`Calibration.save`, raw confidence -> held-out accuracy
  per entity, fitted on the out-of-fold answers of grouped cross-validation. Without it a reader
  reports raw confidences.

A ranker learns what the candidates of *its* pages look like: pages read at another detector side
have other text sizes, other lines and other misreads, and features are read by column position
and the entity by its index. :func:`check_model` therefore refuses a model trained on other page
settings, other features or another entity order, with a message that says what differs, rather
than let it score numbers it was not trained on.

Example:
    >>> from specread.rank.model import check_model, load_model
    >>> from specread.settings import preset
    >>> model = load_model()                     # $SPECREAD_MODEL, else the packaged folder
    >>> model.card["ocr"]["det_side"]
    960
    >>> check_model(model, preset("fast"))       # same pages: fast changes kernels, not what is read
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from specread.affects import Affects, fields_affecting
from specread.data import PACKAGED_MODEL
from specread.errors import ModelMismatchError
from specread.extract.features import FEATURE_NAMES
from specread.extract.priors import Priors
from specread.io.files import atomic_path, atomic_write
from specread.rank.calibrate import Calibration
from specread.rank.ranker import CandidateRanker
from specread.settings import OcrSettings
from specread.units.registry import ENTITIES
from specread.version import __version__

__all__ = [
    "MODEL_ENV",
    "MODEL_FORMAT",
    "PAGE_SETTINGS",
    "Model",
    "check_model",
    "file_sha256",
    "labels_fingerprint",
    "load_model",
    "ocr_card",
    "save_model",
    "write_manifest",
]

MODEL_FORMAT = 1
"""The manifest format this specread reads and writes."""

MODEL_ENV = "SPECREAD_MODEL"
"""The environment variable naming the model folder when none is passed."""

MANIFEST, RANKER_FILE, PRIORS_FILE = "model.json", "ranker.txt", "priors.json"
CALIBRATION_FILE = "calibration.json"

PAGE_SETTINGS: tuple[str, ...] = fields_affecting(OcrSettings, Affects.PAGE)
"""The :class:`OcrSettings` fields that change the pages a model learns from (tagged ``page``), kept in its manifest.

The others are tagged ``kernels`` (``backend``, ``precision``, ``charset``, ``rec_batch``,
``rec_width_step``, ``rec_max_columns``: how fast the same models run, not what they read) or
``speed`` (:mod:`specread.affects`): the presets in ``settings.toml`` document ``fast`` as giving
``accurate``'s predictions (bfloat16 changed 9 of 344 on the samples measured there). So a model
trained with ``accurate`` serves ``fast`` too, and one trained at detector side 1280 is refused at 960.
"""

RETRAIN = "retrain it with `specread train`"


@dataclass(frozen=True)
class Model:
    """A loaded model folder.

    Attributes:
        ranker: the fitted candidate ranker.
        priors: the label priors its features (and the blind guesses) use.
        card: the manifest (``model.json``) as a dict.
        path: the folder.
        digest: sha256 of ``model.json``, which holds the other files' sha256: the model's identity.
        calibration: raw confidence -> held-out accuracy per entity, when the folder has one.
    """

    ranker: CandidateRanker
    priors: Priors
    card: dict[str, Any]
    path: str
    digest: str
    calibration: Calibration | None = None


# -- fingerprints ------------------------------------------------------------------------------------------------------
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def labels_fingerprint(path: str | Path) -> dict[str, Any]:
    """What a labels CSV was: its name, sha256, rows, unique images and unique group_ids.

    Raises:
        InputFormatError: not a labels CSV.
    """
    from specread.io.dataset import read_labels

    labels = read_labels(path)
    return {
        "labels": Path(path).name,
        "sha256": file_sha256(path),
        "rows": len(labels),
        "images": len({label.image for label in labels}),
        "group_ids": len({label.group_id for label in labels}),
    }


def ocr_card(ocr: OcrSettings) -> dict[str, Any]:
    """The page-affecting OCR settings (:data:`PAGE_SETTINGS`), as a manifest stores them."""
    return {name: getattr(ocr, name) for name in PAGE_SETTINGS}


# -- writing -----------------------------------------------------------------------------------------------------------
def write_manifest(path: str | Path, card: dict[str, Any]) -> dict[str, Any]:
    """Write ``model.json`` for the ranker and priors already in folder ``path``; returns the manifest.

    ``card`` gives ``ocr`` (:func:`ocr_card`; required) and whatever else the model should
    record (``data``, ``params``, ``metrics``, ``priors_from``...); ``format``, ``specread``,
    ``feature_names`` and ``entities`` default to this specread's, and ``files`` is always
    the sha256 of the other files (``calibration.json`` when present), so a folder whose files
    were swapped or cut short is refused.

    Raises:
        ValueError: ``card`` has no ``ocr`` settings.
    """
    if not set(PAGE_SETTINGS) <= set(card.get("ocr", {})):
        raise ValueError(f"a model card needs the OCR settings it was trained with: ocr = {list(PAGE_SETTINGS)}")
    folder = Path(path)
    names = [RANKER_FILE, PRIORS_FILE] + ([CALIBRATION_FILE] if (folder / CALIBRATION_FILE).is_file() else [])
    manifest = {
        "format": MODEL_FORMAT,
        "specread": __version__,
        "feature_names": list(FEATURE_NAMES),
        "entities": list(ENTITIES),
        **card,
        "files": {name: file_sha256(folder / name) for name in names},
    }
    text = json.dumps(manifest, indent=2) + "\n"
    with atomic_write(folder / MANIFEST, encoding="utf-8") as fh:
        fh.write(text)
    return manifest


def save_model(
    path: str | Path,
    ranker: CandidateRanker,
    priors: Priors,
    card: dict[str, Any],
    calibration: Calibration | None = None,
) -> Model:
    """Write a model folder (created if needed): ``ranker.txt``, ``priors.json``, ``calibration.json``
    (when given), then ``model.json``.

    The manifest goes last and is removed first, so a folder whose writing was cut short has
    none and is refused as "not a model folder" instead of pairing a new ranker with old priors.
    ``params`` defaults to the ranker's hyperparameters; see :func:`write_manifest` for ``card``.

    Raises:
        ValueError: ``card`` has no ``ocr`` settings.
        NotFittedError: the ranker is not fitted.
        OSError: the folder cannot be made or written.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    (folder / CALIBRATION_FILE).unlink(missing_ok=True)
    writers = [(RANKER_FILE, ranker.save), (PRIORS_FILE, priors.save)]
    if calibration is not None:
        writers.append((CALIBRATION_FILE, calibration.save))
    for name, save in writers:
        with atomic_path(folder / name) as tmp:
            save(tmp)
    manifest = write_manifest(folder, {"params": ranker.get_params(), **card})
    return Model(ranker, priors, manifest, str(folder), file_sha256(folder / MANIFEST), calibration)


# -- reading -----------------------------------------------------------------------------------------------------------
def _difference(theirs: Sequence[str], ours: Sequence[str]) -> str:
    """What separates two name lists, in a few words (the first three of each kind)."""
    missing = [n for n in ours if n not in theirs]
    extra = [n for n in theirs if n not in ours]
    parts = [f"without {', '.join(missing[:3])}" if missing else "", f"with {', '.join(extra[:3])}" if extra else ""]
    return "; ".join(p for p in parts if p) or "the same names in another order"


def _check_card(card: dict[str, Any], where: str) -> None:
    """Refuse a manifest of another format, other features or another entity order."""
    if card.get("format") != MODEL_FORMAT:
        raise ModelMismatchError(
            where, f"has model format {card.get('format')!r}; this specread reads format {MODEL_FORMAT}: {RETRAIN}"
        )
    for key, ours, what in (
        ("feature_names", FEATURE_NAMES, "other features"),
        ("entities", ENTITIES, "another entity order"),
    ):
        theirs = card.get(key)
        if not isinstance(theirs, list):
            raise ModelMismatchError(where, f"has a garbled {MANIFEST} (no {key} list)")
        if theirs != list(ours):
            raise ModelMismatchError(
                where, f"was trained on {what} than this specread's ({_difference(theirs, ours)}): {RETRAIN}"
            )
    ocr, files = card.get("ocr"), card.get("files")
    if not isinstance(ocr, dict) or not set(PAGE_SETTINGS) <= set(ocr) or not isinstance(files, dict):
        raise ModelMismatchError(where, f"has a garbled {MANIFEST} (its ocr settings or files are missing)")


def _read_file(folder: Path | Traversable, name: str, where: str, files: dict[str, str]) -> str:
    try:
        data = (folder / name).read_bytes()
    except OSError:
        raise ModelMismatchError(where, f"has no {name}: the folder is incomplete; {RETRAIN}") from None
    if _sha256(data) != files.get(name):
        raise ModelMismatchError(where, f"has a {name} that is not the one {MANIFEST} names (its sha256 differs)")
    return data.decode("utf-8")


def _read_model(folder: Path | Traversable, where: str) -> Model:
    if not folder.is_dir():
        raise ModelMismatchError(where, f"not found: pass a folder `specread train` wrote (--model or ${MODEL_ENV})")
    try:
        head = (folder / MANIFEST).read_bytes()
    except OSError:
        raise ModelMismatchError(where, f"is not a model folder: it has no {MANIFEST} ({RETRAIN})") from None
    try:
        card = json.loads(head)
    except ValueError as exc:
        raise ModelMismatchError(where, f"has a garbled {MANIFEST} ({exc})") from None
    if not isinstance(card, dict):
        raise ModelMismatchError(where, f"has a garbled {MANIFEST} (not a JSON object)")
    _check_card(card, where)
    ranker_text = _read_file(folder, RANKER_FILE, where, card["files"])
    priors_text = _read_file(folder, PRIORS_FILE, where, card["files"])
    calibration_text = None
    if CALIBRATION_FILE in card["files"]:
        calibration_text = _read_file(folder, CALIBRATION_FILE, where, card["files"])
    try:
        ranker = CandidateRanker.from_string(ranker_text)
        priors = Priors.from_dict(json.loads(priors_text))
        calibration = Calibration.from_dict(json.loads(calibration_text)) if calibration_text else None
    except Exception as exc:  # lightgbm raises its own error type for a bad model string
        raise ModelMismatchError(where, f"has files that do not load ({type(exc).__name__}: {exc})") from None
    return Model(ranker, priors, card, where, _sha256(head), calibration)


_LOADED: dict[tuple[str, tuple], Model] = {}


def _signature(folder: Path | Traversable) -> tuple:
    """Size and modification time of the folder's files: a retrained folder is read again."""
    if not isinstance(folder, Path):
        return ()
    found = []
    for name in (MANIFEST, RANKER_FILE, PRIORS_FILE, CALIBRATION_FILE):
        try:
            st = (folder / name).stat()
            found.append((st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            found.append(None)
    return tuple(found)


def load_model(path: str | Path | None = None) -> Model:
    """Load a model folder: ``path``, else ``$SPECREAD_MODEL``, else the packaged one.

    Loaded models are kept per folder (a process builds many readers from one) until the
    folder's files change. Features, entity order, format and file hashes are checked here;
    the OCR settings by :func:`check_model`, which needs the run's settings.

    Raises:
        ModelMismatchError: a missing folder, one without ``model.json``, a garbled or
            incomplete one, or one trained on other features or another entity order.
    """
    chosen = str(path) if path else os.environ.get(MODEL_ENV, "")
    folder: Path | Traversable = Path(chosen) if chosen else PACKAGED_MODEL
    key = (str(folder), _signature(folder))
    model = _LOADED.get(key)
    if model is None:
        model = _read_model(folder, str(folder))
        if len(_LOADED) >= 8:
            _LOADED.clear()
        _LOADED[key] = model
    return model


def check_model(model: Model, ocr: OcrSettings) -> None:
    """Refuse a model trained on pages read with other :data:`PAGE_SETTINGS`, features or entity order.

    Raises:
        ModelMismatchError: what differs, e.g. ``model m/ was trained on OCR det_side 1280; this run
            reads with det_side 960: ...``.
    """
    _check_card(model.card, model.path)
    trained, now = model.card["ocr"], ocr_card(ocr)
    changed = [name for name in PAGE_SETTINGS if trained[name] != now[name]]
    if changed:

        def show(values: dict[str, Any]) -> str:
            return ", ".join(f"{name} {json.dumps(values[name])}" for name in changed)

        raise ModelMismatchError(
            model.path,
            f"was trained on OCR {show(trained)}; this run reads with {show(now)}: pass the same OCR "
            "settings (--preset), or retrain it on pages read this way (`specread train --preset ...`)",
        )
