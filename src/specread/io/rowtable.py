"""An input CSV and its answers held compactly: memory flat in the number of rows.

A catalogue's input can have millions of rows on few images (2,000,000 rows on
one image took 6.3 GB as :class:`~specread.io.dataset.Row` objects in the runner,
its done set and the final rewrite). Yet a run needs little per row:

* **the work**: rows that share ``(image_link, group_id, entity_name)`` share
  their answer (an image is read once per product group, for the entities asked
  of it), so the work is one *key* per distinct triple, each a ``Row`` whose
  ``index`` is the key's number: what is sent to a worker is an image and its
  few keys, never its rows;
* **the rows**: each row's index (an int64 while every index is a plain number,
  as in the challenge's files; else one byte buffer and its end offsets), its key
  (rows grouped by key through one permutation), and a sorted array of the indices
  (their hashes, for text), which finds a row by its index (unique indices are
  checked with it, and a resumed output's rows are matched to the input with it);
* **the answers** (:class:`Answers`): per row the number of its answer in a table
  of distinct answers, kept in step with the output's append log, so the final
  rewrite in input order writes from memory without re-reading the log.

For 2M rows that is about 30 bytes a row with numbers (50 with text), against
about 1 kB as objects.
"""

from __future__ import annotations

import csv
import hashlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from specread.errors import UnknownEntityError
from specread.io.dataset import INPUT_COLUMNS, CsvTable, Row
from specread.io.files import atomic_write
from specread.io.output import output_row
from specread.units.registry import get_registry

__all__ = ["Answers", "RowTable"]

_CHUNK = 65_536
"""Rows handled per step where a step builds Python objects (bounded, whatever the input's size)."""


def _field(record: dict[str, str], column: str) -> str:
    return record.get(column, "").strip()


def _plain_number(index: str) -> int | None:
    """``index`` as an int when it is one written plainly (ASCII digits, no leading zero, under 19 digits)."""
    if index.isascii() and index.isdigit() and len(index) < 19 and (index[0] != "0" or index == "0"):
        return int(index)
    return None


class _Indices:
    """The indices while an input is read: as numbers while every one is a plain number, else as bytes and hashes."""

    def __init__(self) -> None:
        self.numbers: array | None = array("q")
        self.blob, self.ends, self.hashes = bytearray(), array("q"), array("q")

    def append(self, index: str) -> None:
        if self.numbers is not None:
            number = _plain_number(index)
            if number is not None:
                self.numbers.append(number)
                return
            numbers, self.numbers = self.numbers, None
            for earlier in numbers:
                self._append_text(str(earlier))
        self._append_text(index)

    def _append_text(self, index: str) -> None:
        self.blob += index.encode()
        self.ends.append(len(self.blob))
        self.hashes.append(hash(index))


class RowTable:
    """The validated rows of an input CSV, compactly (see the module's docstring); :meth:`read` makes one.

    Attributes:
        path: the input CSV.
        n: rows.
        digest: :func:`~specread.io.dataset.rows_digest` of the rows (what a job record names).
        keys: one ``Row`` per distinct ``(image_link, group_id, entity_name)``, its ``index`` the key's number.
        images: image link -> its keys' numbers, both in first-appearance order.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.n = 0
        self.digest = ""
        self.keys: list[Row] = []
        self.images: dict[str, list[int]] = {}
        self._numbers: np.ndarray | None = None  # the indices, when all are plain numbers
        self._blob = bytearray()  # else the indices' UTF-8 bytes, each ending at _ends
        self._ends = np.zeros(0, np.int64)
        self._hashes = np.zeros(0, np.int64)  # sorted: the indices' hashes (their numbers in number mode)
        self._order = np.zeros(0, np.int64)  # row positions in the order of _hashes
        self._by_key = np.zeros(0, np.int64)  # row positions, grouped by key
        self._starts = np.zeros(1, np.int64)  # key k's rows: _by_key[_starts[k]:_starts[k + 1]]

    @classmethod
    def read(cls, path: str | Path) -> RowTable:
        """Read and validate an input CSV as :func:`~specread.io.dataset.read_rows` does, into a table.

        Raises:
            InputFormatError: missing columns, an empty or duplicate index, an empty file or one that is not a
                UTF-8 CSV.
            UnknownEntityError: an entity name outside the challenge's eight (as an ``InputFormatError``).
        """
        table = cls(Path(path))
        entities = get_registry().entities
        text = _Indices()
        key_of = array("i")
        triples: dict[tuple[str, str, str], int] = {}
        digest = hashlib.sha256()
        with CsvTable(table.path, INPUT_COLUMNS) as csv_table:
            has_index = "index" in csv_table.header
            for n, (_, rec) in enumerate(csv_table):
                index = _field(rec, "index") if has_index else str(n)
                if not index:
                    raise csv_table.error("empty index")
                entity = _field(rec, "entity_name")
                if entity not in entities:
                    raise csv_table.error(str(UnknownEntityError(entity, sorted(entities))))
                link, group = _field(rec, "image_link"), _field(rec, "group_id")
                digest.update("\x1f".join((index, link, group, entity)).encode() + b"\n")
                text.append(index)
                key = triples.setdefault((link, group, entity), len(triples))
                if key == len(table.keys):
                    table.keys.append(Row(str(key), link, group, entity))
                    table.images.setdefault(link, []).append(key)
                key_of.append(key)
        table._fill(text, key_of, digest.hexdigest())
        table._refuse_duplicates()
        return table

    def _fill(self, text: _Indices, key_of: array, digest: str) -> None:
        self.n, self.digest = len(key_of), digest
        small = np.int32 if self.n < 2**31 else np.int64  # positions: half the bytes where they fit
        keys = np.frombuffer(key_of, np.int32)
        self._by_key = np.argsort(keys, kind="stable").astype(small)
        self._starts = np.concatenate(([0], np.cumsum(np.bincount(keys, minlength=len(self.keys)))))
        del keys
        if text.numbers is not None:  # every index a plain number: the number is its own exact "hash"
            self._numbers = np.frombuffer(text.numbers, np.int64)
            unsorted = self._numbers
        else:
            self._blob, self._ends = text.blob, np.frombuffer(text.ends, np.int64)
            unsorted = np.frombuffer(text.hashes, np.int64)
        self._order = np.argsort(unsorted, kind="stable").astype(small)
        self._hashes = unsorted[self._order]

    def _key(self, index: str) -> int:
        """What :attr:`_hashes` holds for ``index`` (-1, which no plain number has, for others in number mode)."""
        if self._numbers is None:
            return hash(index)
        number = _plain_number(index)
        return -1 if number is None else number

    def _refuse_duplicates(self) -> None:
        """Raise for the first row (in file order) whose index an earlier row has."""
        same = np.flatnonzero(self._hashes[1:] == self._hashes[:-1])
        first: int | None = None
        for j in same:  # a run of equal hashes: duplicates, or (rarely) distinct indices that collide
            seen: dict[str, int] = {}
            for pos in sorted(int(p) for p in self._order[j : j + 2]):
                earlier = seen.setdefault(self.index(pos), pos)
                if earlier != pos and (first is None or pos < first):
                    first = pos
        if first is not None:
            with CsvTable(self.path, INPUT_COLUMNS) as table:
                for n, _ in enumerate(table):
                    if n == first:
                        raise table.error(f"duplicate index {self.index(first)!r}")

    def index(self, pos: int) -> str:
        """The index of the row at ``pos`` (0-based, in file order)."""
        if self._numbers is not None:
            return str(int(self._numbers[pos]))
        start = int(self._ends[pos - 1]) if pos else 0
        return self._blob[start : int(self._ends[pos])].decode()

    def find(self, index: str) -> int:
        """The position of the row whose index is ``index``; -1 if there is none."""
        h = self._key(index)
        lo, hi = np.searchsorted(self._hashes, h, "left"), np.searchsorted(self._hashes, h, "right")
        for j in range(int(lo), int(hi)):
            if self.index(int(self._order[j])) == index:
                return int(self._order[j])
        return -1

    def positions(self, indices: Sequence[str]) -> np.ndarray:
        """:meth:`find` for many indices at once (vectorised; -1 where an index is not in the input)."""
        if not self.n:
            return np.full(len(indices), -1, np.int64)
        wanted = np.fromiter((self._key(i) for i in indices), np.int64, len(indices))
        at = np.minimum(np.searchsorted(self._hashes, wanted), self.n - 1)
        out = np.where(self._hashes[at] == wanted, self._order[at], -1).astype(np.int64)
        for i, (pos, index) in enumerate(zip(out.tolist(), indices, strict=True)):
            if pos >= 0 and self.index(pos) != index:  # a hash collision: look the long way
                out[i] = self.find(index)
        return out

    def rows_of(self, key: int) -> np.ndarray:
        """The positions of key ``key``'s rows, in file order."""
        return self._by_key[self._starts[key] : self._starts[key + 1]]

    def key_mask(self, rows: np.ndarray) -> np.ndarray:
        """Per key: whether any of its rows is set in the per-row boolean ``rows``."""
        if not self.keys:
            return np.zeros(0, bool)
        return np.logical_or.reduceat(rows[self._by_key], self._starts[:-1])

    def indices(self, positions: np.ndarray) -> Iterator[str]:
        """The indices of the rows at ``positions``, in that order."""
        for start in range(0, len(positions), _CHUNK):
            chunk = positions[start : start + _CHUNK]
            if self._numbers is not None:
                yield from map(str, self._numbers[chunk].tolist())
                continue
            ends = self._ends[chunk]
            begins = np.where(chunk > 0, self._ends[np.maximum(chunk - 1, 0)], 0)
            for begin, end in zip(begins.tolist(), ends.tolist(), strict=True):
                yield self._blob[begin:end].decode()

    def iter_indices(self) -> Iterator[str]:
        """Every row's index, in file order."""
        for start in range(0, self.n, _CHUNK):
            yield from self.indices(np.arange(start, min(start + _CHUNK, self.n)))


class Answers:
    """Each input row's answer as it is in the output's append log, by number in a table of distinct answers.

    Args:
        table: the input rows.
        with_confidence: whether an answer has a confidence column.
    """

    def __init__(self, table: RowTable, with_confidence: bool) -> None:
        self.table = table
        self.with_confidence = with_confidence
        self.of_row = np.full(table.n, -1, np.int32)
        self._tails: list[tuple[str, ...]] = []
        self._ids: dict[tuple[str, ...], int] = {}

    def _id(self, tail: tuple[str, ...]) -> int:
        found = self._ids.get(tail)
        if found is None:
            found = self._ids[tail] = len(self._tails)
            self._tails.append(tail)
        return found

    def load(self, log: Path) -> None:
        """Take the answers of an append log (last write wins; rows whose index is not in the input are ignored)."""
        with open(log, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            while chunk := [r for _, r in zip(range(_CHUNK), reader, strict=False) if r]:
                positions = self.table.positions([r[0] for r in chunk])
                for pos, r in zip(positions.tolist(), chunk, strict=True):
                    if pos >= 0:
                        self.of_row[pos] = self._id(tuple(r[1:]))

    def done(self) -> np.ndarray:
        """Per row: whether the log holds its answer."""
        return self.of_row >= 0

    def set(self, positions: np.ndarray, prediction: str, confidence: float | None) -> tuple[str, ...]:
        """Record one answer for the rows at ``positions``; returns its output columns after the index."""
        tail = tuple(output_row("", prediction, confidence, self.with_confidence)[1:])
        self.of_row[positions] = self._id(tail)
        return tail

    def rows(self) -> Iterable[list[str]]:
        """The output's rows in input order, one per index ("" for a row without an answer)."""
        empty = ("",) * (2 if self.with_confidence else 1)
        for start, index in enumerate(self.table.iter_indices()):
            answer = int(self.of_row[start])
            yield [index, *(self._tails[answer] if answer >= 0 else empty)]

    def write_final(self, path: Path, header: Sequence[str]) -> None:
        """Rewrite the output at ``path`` atomically: ``header``, then one row per input index, in input order.

        An output that is a symbolic link is written through: the link stays, its target gets the rows.
        """
        with atomic_write(path, newline="", encoding="utf-8", through_link=True) as out:
            writer = csv.writer(out)
            writer.writerow(header)
            writer.writerows(self.rows())
