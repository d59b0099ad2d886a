"""Candidate features streamed to disk shards, so the ranker trains on millions of candidate rows.

:func:`write_shards` reads labelled rows one chunk at a time (``rows_per_shard``
labelled rows), computes every candidate's features with the same code the
pipeline runs (:func:`row_examples`), and writes one ``.npz`` shard per chunk:

* ``X`` float32 (candidates, features) in :data:`FEATURE_NAMES` order, ``y`` int8
  (1 where the candidate equals the gold answer, as :func:`build_examples` decides),
  ``groups`` int64: the labelled row each candidate belongs to;
* per labelled row: ``row_id`` (its position in the stream: unique across
  shards, and equal to the query id :func:`build_examples` gives it),
  ``row_candidates`` (how many candidates it has, maybe 0), ``row_entity``
  (position in ``ENTITIES``), ``row_key`` (image) and ``row_group_id``
  (product group): what a grouped split needs.

A labelled row's candidates never straddle two shards, so anything computed
within a row (the rule margin) is computed shard by shard. Memory stays flat
in the number of rows: one chunk is in memory at a time (per worker).

Shards are written to a temporary name and renamed, and carry a digest of the
rows they were made from, so a killed run keeps its finished shards and a
rerun over the same rows only computes the missing ones. ``index.json``
(written last, also atomically) lists the shards with their counts and a
content fingerprint; :class:`ShardSet` opens it, iterates the shards and hands
LightGBM :class:`lightgbm.Sequence` views that build its Dataset batch by
batch (:meth:`ShardSet.sequences`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np

from specread.extract.candidates import Mention, find_mentions
from specread.extract.features import FEATURE_NAMES, page_candidates, to_matrix
from specread.extract.priors import Priors
from specread.io.files import atomic_write
from specread.lifeline import lifeline, start_worker
from specread.metrics import normalize_answer
from specread.types import LabelledRow
from specread.units.registry import ENTITIES

__all__ = [
    "DEFAULT_ROWS_PER_SHARD",
    "LabelledRow",
    "Shard",
    "ShardSet",
    "row_examples",
    "write_shards",
]

FORMAT = 1
"""Version of the shard layout; a shard set of another version is refused."""
INDEX = "index.json"
DEFAULT_ROWS_PER_SHARD = 4096
"""Labelled rows per shard: some ten thousand candidate rows, a few MB of features."""
BATCH_ROWS = 65536
"""Candidate rows LightGBM reads per call when it builds a Dataset from shards."""
_ROW_ARRAYS = ("row_id", "row_candidates", "row_entity", "row_key", "row_group_id")
_ARRAYS = ("X", "y", "groups", *_ROW_ARRAYS)


def row_examples(row: LabelledRow, mentions: Sequence[Mention], priors: Priors) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32, one row per candidate) and labels (bool: the candidate equals the gold answer).

    Numbers are compared as numbers (``500 gram`` equals ``500.0 gram``); a row
    without a candidate gives shapes ``(0, n_features)`` and ``(0,)``.
    """
    cands = page_candidates(row.page, mentions, row.entity, priors, row.group_id or None)
    gold = normalize_answer(row.gold)
    hits = [normalize_answer(c.answer.text) == gold for c in cands]
    return to_matrix(cands), np.array(hits, dtype=bool)


# -- writing ----------------------------------------------------------------------------------


def _rows_digest(rows: Sequence[LabelledRow], first_id: int, spec: str) -> str:
    """What a shard was made from: the rows' ids, identities and labels, the features and the priors."""
    h = hashlib.sha256(f"{spec}\x1d{first_id}\x1d".encode())
    for r in rows:
        h.update("\x1f".join((r.key, r.entity, r.group_id, r.gold)).encode() + b"\x1e")
    return h.hexdigest()


def _content_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in _ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _shard_arrays(rows: Sequence[LabelledRow], first_id: int, priors: Priors) -> dict[str, np.ndarray]:
    """Every candidate of ``rows`` (ids from ``first_id``), as the arrays of one shard."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    counts = np.zeros(len(rows), dtype=np.int32)
    mentions: dict[str, list[Mention]] = {}  # rows of one image share its mentions (within the chunk)
    for i, row in enumerate(rows):
        if row.entity not in ENTITIES:
            raise ValueError(f"unknown entity {row.entity!r} in labelled row of {row.key!r}")
        found = mentions.get(row.key)
        if found is None:
            found = mentions[row.key] = find_mentions(row.page)
        X, y = row_examples(row, found, priors)
        counts[i] = len(y)
        xs.append(X)
        ys.append(y)
    ids = np.arange(first_id, first_id + len(rows), dtype=np.int64)
    return {
        "X": np.vstack(xs) if xs else np.zeros((0, len(FEATURE_NAMES)), np.float32),
        "y": np.concatenate(ys).astype(np.int8) if ys else np.zeros(0, np.int8),
        "groups": np.repeat(ids, counts),
        "row_id": ids,
        "row_candidates": counts,
        "row_entity": np.array([ENTITIES.index(r.entity) for r in rows], dtype=np.int8),
        "row_key": np.array([r.key for r in rows], dtype=str),
        "row_group_id": np.array([r.group_id for r in rows], dtype=str),
    }


def _shard_name(number: int) -> str:
    return f"shard-{number:05d}.npz"


def _write_shard(
    path: Path, rows: Sequence[LabelledRow], first_id: int, priors: Priors, rows_digest: str, compress: bool
) -> dict:
    """Compute one shard, write it atomically, and return its index entry."""
    arrays = _shard_arrays(rows, first_id, priors)
    entry = {
        "file": path.name,
        "rows": len(rows),
        "candidates": len(arrays["y"]),
        "positives": int(arrays["y"].sum()),
        "digest": _content_digest(arrays),
        "rows_digest": rows_digest,
    }
    meta = np.frombuffer(json.dumps(entry).encode(), dtype=np.uint8)
    save = np.savez_compressed if compress else np.savez
    with atomic_write(path, "wb", fsync=True) as fh:
        save(fh, meta=meta, **arrays)
    return entry


def _finished_entry(path: Path, rows_digest: str) -> dict | None:
    """The index entry of a shard already written from the same rows, or None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            entry = json.loads(npz["meta"].tobytes())
    except (OSError, ValueError, KeyError):
        return None
    return entry if entry.get("rows_digest") == rows_digest else None


_WORKER_PRIORS: Priors | None = None


def _init_worker(priors: Priors) -> None:
    global _WORKER_PRIORS
    _WORKER_PRIORS = priors


def _write_shard_in_worker(path: Path, rows: list[LabelledRow], first_id: int, digest: str, compress: bool) -> dict:
    assert _WORKER_PRIORS is not None
    return _write_shard(path, rows, first_id, _WORKER_PRIORS, digest, compress)


def _priors_digest(priors: Priors) -> str:
    return hashlib.sha256(json.dumps(priors.to_dict(), sort_keys=True).encode()).hexdigest()


def _write_index(out: Path, spec: str, rows_per_shard: int, entries: dict[int, dict]) -> None:
    """Drop the shards of no entry, then write ``index.json`` (last, atomically: the set is complete)."""
    kept = {_shard_name(n) for n in entries}
    for stale in out.glob("shard-*.npz"):
        if stale.name not in kept:
            stale.unlink()
    shards = [entries[n] for n in sorted(entries)]
    fingerprint = hashlib.sha256(spec.encode())
    for e in shards:
        fingerprint.update(e["digest"].encode())
    index = {
        "format": FORMAT,
        "feature_names": list(FEATURE_NAMES),
        "entities": list(ENTITIES),
        "rows_per_shard": rows_per_shard,
        "rows": sum(e["rows"] for e in shards),
        "candidates": sum(e["candidates"] for e in shards),
        "positives": sum(e["positives"] for e in shards),
        "fingerprint": fingerprint.hexdigest(),
        "shards": shards,
    }
    with atomic_write(out / INDEX, "wb", fsync=True) as fh:
        fh.write(json.dumps(index, indent=1).encode())


def write_shards(
    rows: Iterable[LabelledRow],
    priors: Priors,
    out_dir: str | Path,
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    workers: int = 1,
    compress: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ShardSet:
    """Stream labelled rows through the feature code into ``.npz`` shards under ``out_dir``.

    Args:
        rows: labelled rows, read once and in order (a generator is fine).
        priors: the priors the features read.
        out_dir: folder of the shards and ``index.json`` (created; shards of an
            earlier, interrupted run over the same rows are kept and not recomputed).
        rows_per_shard: labelled rows per shard (memory per worker grows with it).
        workers: processes computing features (1: in this process).
        compress: write ``np.savez_compressed`` shards (smaller, slower).
        progress: called with (labelled rows done, shards done) after each shard.

    Returns:
        The written :class:`ShardSet`.
    """
    if rows_per_shard < 1 or workers < 1:
        raise ValueError("rows_per_shard and workers must be at least 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX).unlink(missing_ok=True)  # the index says "complete": not until this run is
    for partial in out.glob(".shard-*.tmp"):  # left by a killed run
        partial.unlink()
    spec = json.dumps({"format": FORMAT, "features": FEATURE_NAMES, "priors": _priors_digest(priors)})
    entries: dict[int, dict] = {}
    pending: dict[int, Future] = {}
    done_rows = 0
    pool = None
    if workers > 1:
        # Workers only parse and compute features (no LightGBM, no threads): forking is safe, needs no main guard.
        context = get_context("fork" if "fork" in get_all_start_methods() else "spawn")
        # start_worker: the workers die with this process, however it ends.
        pool = ProcessPoolExecutor(
            workers, context, initializer=start_worker, initargs=(lifeline(), _init_worker, priors)
        )

    def settle(number: int) -> None:
        nonlocal done_rows
        entries[number] = pending.pop(number).result()
        done_rows += entries[number]["rows"]
        if progress:
            progress(done_rows, len(entries))

    try:
        stream = iter(rows)
        number = 0
        while chunk := list(islice(stream, rows_per_shard)):
            path = out / _shard_name(number)
            first_id = number * rows_per_shard
            digest = _rows_digest(chunk, first_id, spec)
            finished = _finished_entry(path, digest)
            future: Future = Future()
            if finished is not None:
                future.set_result(finished)
            elif pool is None:
                future.set_result(_write_shard(path, chunk, first_id, priors, digest, compress))
            else:
                future = pool.submit(_write_shard_in_worker, path, chunk, first_id, digest, compress)
            pending[number] = future
            del chunk
            while len(pending) > 2 * workers - 1 or (pending and pending[min(pending)].done()):
                settle(min(pending))
            number += 1
        while pending:
            settle(min(pending))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    _write_index(out, spec, rows_per_shard, entries)
    return ShardSet(out)


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Shard:
    """One shard's arrays (see the module docstring for what each holds)."""

    number: int
    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    row_id: np.ndarray
    row_candidates: np.ndarray
    row_entity: np.ndarray
    row_key: np.ndarray
    row_group_id: np.ndarray


class ShardSet:
    """A folder of shards written by :func:`write_shards`, opened by its ``index.json``.

    Raises:
        FileNotFoundError: no complete shard set in ``directory`` (no index).
        ValueError: shards of another format or other features (rewrite them).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        index = json.loads((self.directory / INDEX).read_text(encoding="utf-8"))
        if index.get("format") != FORMAT or index.get("feature_names") != list(FEATURE_NAMES):
            raise ValueError(f"shards in {self.directory} hold other features or another format: write them again")
        self.index = index
        self.fingerprint: str = index["fingerprint"]
        self.n_rows: int = index["rows"]
        self.n_candidates: int = index["candidates"]

    def __len__(self) -> int:
        return len(self.index["shards"])

    def __iter__(self) -> Iterator[Shard]:
        return (self.load(i) for i in range(len(self)))

    def __repr__(self) -> str:
        return f"ShardSet({str(self.directory)!r}, shards={len(self)}, rows={self.n_rows})"

    def load(self, number: int, names: Iterable[str] = _ARRAYS) -> Shard:
        """Shard ``number`` (only the arrays in ``names`` are read; the others are empty)."""
        wanted = set(names)
        with np.load(self.directory / self.index["shards"][number]["file"], allow_pickle=False) as npz:
            arrays = {name: npz[name] if name in wanted else np.zeros(0) for name in _ARRAYS}
        return Shard(number, **arrays)

    def rows(self) -> Iterator[Shard]:
        """Every shard with its per-row arrays only (cheap: no features)."""
        return (self.load(i, _ROW_ARRAYS) for i in range(len(self)))

    def sequences(
        self, design: Callable[[np.ndarray, np.ndarray], np.ndarray], part: Callable[[Shard], np.ndarray] | None = None
    ) -> list:
        """One :class:`lightgbm.Sequence` per shard, reading ``design(X, groups)`` of the selected rows.

        ``part(shard)`` is a boolean mask of the candidate rows to include (all of
        them without it); shards with nothing selected are left out. The design
        matrix of one shard at a time is held in memory while LightGBM reads.
        """
        cache = _OneShard(self, design, part)
        out = []
        for number in range(len(self)):
            size = self.index["shards"][number]["candidates"]
            if part is not None and size:
                size = int(part(self.load(number, ("groups", *_ROW_ARRAYS))).sum())
            if size:
                out.append(_sequence_type()(cache, number, size))
        return out


class _OneShard:
    """Holds the design matrix of the shard LightGBM reads now, and only that one."""

    def __init__(
        self,
        shards: ShardSet,
        design: Callable[[np.ndarray, np.ndarray], np.ndarray],
        part: Callable[[Shard], np.ndarray] | None,
    ) -> None:
        self.shards = shards
        self.design = design
        self.part = part
        self.number = -1
        self.matrix = np.zeros((0, 0), np.float32)

    def get(self, number: int) -> np.ndarray:
        if number != self.number:
            self.matrix = np.zeros((0, 0), np.float32)  # free the previous one first
            shard = self.shards.load(number)
            keep = slice(None) if self.part is None else self.part(shard)
            self.matrix = np.ascontiguousarray(self.design(shard.X[keep], shard.groups[keep]))
            self.number = number
        return self.matrix


_SEQUENCE: type | None = None


def _sequence_type() -> type:
    """The :class:`lightgbm.Sequence` subclass over one shard (lightgbm is imported only when training)."""
    global _SEQUENCE
    if _SEQUENCE is None:
        import lightgbm as lgb

        class ShardSequence(lgb.Sequence):
            batch_size = BATCH_ROWS

            def __init__(self, cache: _OneShard, number: int, size: int) -> None:
                self.cache = cache
                self.number = number
                self.size = size

            def __len__(self) -> int:
                return self.size

            def __getitem__(self, idx: int | slice | list[int]) -> np.ndarray:
                rows = self.cache.get(self.number)[idx]
                # Rows sampled for the bin bounds must be float64; batches go in as they are.
                return rows if isinstance(idx, slice) else rows.astype(np.float64)

        _SEQUENCE = ShardSequence
    return _SEQUENCE
