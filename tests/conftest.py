"""Shared builders for the test suite: fake OCR engines, tiny datasets, isolated caches.

Most tests do not need the real OCR engine: what they exercise is parsing,
selection, the runner or the CLI. :class:`FakeEngine` implements the
:class:`specread.ocr.engine.OcrEngine` protocol by looking up the text lines
registered for an image's pixels, so a generated image "reads" exactly as the
test says, in microseconds, and every call is counted.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from PIL import Image
from typer.testing import CliRunner, Result

from specread.cli import app
from specread.ocr import engine as engine_module
from specread.ocr import rapid
from specread.pipeline import SpecReader
from specread.readers import build_reader
from specread.settings import ReaderConfig, preset
from specread.types import OcrPage, OcrToken

__all__ = [
    "CliInvoke",
    "FakeEngine",
    "TinyDataset",
    "make_page",
    "make_reader",
    "make_token",
    "rapid_engine",
    "write_csv",
]

# Property tests must not fail on a busy CI machine because one example took over 200 ms.
settings.register_profile("specread", deadline=None)
settings.load_profile("specread")

LINE_HEIGHT = 0.06
"""Relative height of one fake OCR line."""


def make_token(text: str, x0: float, y0: float, width: float | None = None, height: float = LINE_HEIGHT) -> OcrToken:
    """An axis-aligned OCR line at relative position (x0, y0); width defaults to ~text length."""
    w = width if width is not None else 0.02 * max(1, len(text))
    x1, y1 = x0 + w, y0 + height
    return OcrToken(text=text, score=0.95, quad=((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def make_page(lines: Iterable[str | Sequence[str]], width: int = 640, height: int = 480) -> OcrPage:
    """A page with one text row per item; an item that is a sequence becomes boxes side by side on one row.

    ``make_page(["Net Wt 500 g", ("500", "ml")])`` gives a row with one box and a row
    where ``500`` and ``ml`` are separate neighbouring boxes.
    """
    tokens: list[OcrToken] = []
    for row, item in enumerate(lines):
        y = 0.05 + row * 0.12
        boxes = [item] if isinstance(item, str) else list(item)
        x = 0.05
        for text in boxes:
            tok = make_token(text, x, y)
            tokens.append(tok)
            x = tok.box[2] + 0.01  # a small gap, well under one line height
    return OcrPage(tokens=tuple(tokens), width=width, height=height)


def _pixels_key(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes() + str(arr.shape).encode()).hexdigest()


class FakeEngine:
    """An :class:`OcrEngine` that returns registered text for known pixels and counts its calls.

    Args:
        name: engine name (part of the cache fingerprint).
        version: changes the fingerprint, as a new model version would.
    """

    max_side = None  # no limit: a registered image is decoded as registered

    def __init__(self, name: str = "fake", version: str = "1") -> None:
        self.name = name
        self.version = version
        self.calls = 0
        self._pages: dict[str, OcrPage] = {}

    def fingerprint(self) -> str:
        return f"{self.name}-v{self.version}"

    def register(self, image: np.ndarray | Image.Image | str | Path, lines: Iterable[str | Sequence[str]]) -> None:
        """Make ``image`` read as ``lines`` (see :func:`make_page`)."""
        if isinstance(image, str | Path):
            with Image.open(image) as img:
                image = img.convert("RGB")
        arr = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image
        self._pages[_pixels_key(arr)] = make_page(lines, width=arr.shape[1], height=arr.shape[0])

    def at_det_side(self, side: int) -> FakeEngine:
        """The engine of the second pass (``retry_side``): the same text, its own fingerprint and call count."""
        finer = FakeEngine(f"{self.name}-det{side}", self.version)
        finer._pages = self._pages
        return finer

    def __call__(self, image: np.ndarray) -> OcrPage:
        self.calls += 1
        page = self._pages.get(_pixels_key(image))
        if page is None:
            return OcrPage(tokens=(), width=image.shape[1], height=image.shape[0])
        return page


def rapid_engine(preset_name: str = "accurate", **changes: object) -> rapid.RapidOcrEngine:
    """The real RapidOCR engine of a preset with ``changes`` over it (built only: models load on first read)."""
    return rapid.RapidOcrEngine(dataclasses.replace(preset(preset_name), **changes))  # type: ignore[arg-type]


def make_reader(engine: FakeEngine, cache_dir: str | Path | None = None, priors_fallback: bool = False) -> SpecReader:
    """A rules reader around ``engine`` (no cache unless asked, no blind guesses by default)."""
    config = ReaderConfig(
        scorer="rules", cache_dir=None if cache_dir is None else str(cache_dir), use_priors_fallback=priors_fallback
    )
    return build_reader(config, engine=engine)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _make_image(path: Path, seed: int) -> Image.Image:
    """A small PNG whose pixels are unique per seed (the fake engine keys on pixels)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return img


@dataclass
class TinyDataset:
    """A challenge-format dataset on disk whose images read (via ``engine``) as the given lines.

    Attributes:
        root: folder holding ``images/``, ``input.csv`` and ``gold.csv``.
        engine: the fake engine that knows every image.
        rows: ``(index, image_name, entity, gold)`` in input order.
    """

    root: Path
    engine: FakeEngine
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def input_csv(self) -> Path:
        return self.root / "input.csv"

    @property
    def gold_csv(self) -> Path:
        return self.root / "gold.csv"

    @property
    def indices(self) -> list[str]:
        return [r[0] for r in self.rows]

    def link(self, name: str) -> str:
        return f"https://example.invalid/images/{name}"


# Each image: printed lines and (entity, gold answer) rows asked about it.
TINY_SPECS: tuple[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], ...] = (
    (("Net Wt. 500 g", "Organic"), (("item_weight", "500.0 gram"),)),
    (("Input 230V", "Power 60W"), (("wattage", "60.0 watt"), ("voltage", "230.0 volt"))),
    (("12 FL OZ",), (("item_volume", "12.0 fluid ounce"),)),
    (("Width 25 cm", "Keep dry"), (("width", "25.0 centimetre"),)),
    (("Max load 150 kg",), (("maximum_weight_recommendation", "150.0 kilogram"),)),
    (("Premium Quality",), (("item_weight", ""),)),
)


def build_tiny_dataset(root: Path, engine: FakeEngine, specs=TINY_SPECS) -> TinyDataset:
    """Write images, ``input.csv`` and ``gold.csv`` for ``specs`` and register them with ``engine``."""
    ds = TinyDataset(root=root, engine=engine)
    index = 0
    for n, (lines, asks) in enumerate(specs):
        name = f"img_{n:03d}.png"
        img = _make_image(ds.images / name, seed=1000 + n)
        engine.register(img, lines)
        for entity, gold in asks:
            ds.rows.append((str(index), name, entity, gold))
            index += 1
    write_csv(
        ds.input_csv,
        ["index", "image_link", "group_id", "entity_name"],
        [(i, ds.link(name), "0", e) for i, name, e, _ in ds.rows],
    )
    write_csv(
        ds.gold_csv,
        ["index", "image_link", "group_id", "entity_name", "entity_value"],
        [(i, ds.link(name), "0", e, g) for i, name, e, g in ds.rows],
    )
    return ds


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``SPECREAD_CACHE`` at a fresh folder so no test reads or writes the user's OCR cache."""
    path = tmp_path_factory.mktemp("ocr-cache")
    monkeypatch.setenv("SPECREAD_CACHE", str(path))
    return path


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def tmp_dataset(tmp_path: Path, fake_engine: FakeEngine) -> TinyDataset:
    """A six-image dataset whose images read through ``fake_engine``."""
    return build_tiny_dataset(tmp_path / "data", fake_engine)


@pytest.fixture
def fake_rapidocr(monkeypatch: pytest.MonkeyPatch, fake_engine: FakeEngine) -> FakeEngine:
    """Make ``build_engine(settings)`` return ``fake_engine`` for the ``rapidocr`` engine (CLI runs in this process)."""
    monkeypatch.setitem(engine_module.ENGINES, "rapidocr", lambda _settings: fake_engine)
    return fake_engine


CliInvoke = Callable[..., Result]


@pytest.fixture
def cli() -> CliInvoke:
    """Run ``specread ARGS...`` in this process; wide columns so Rich never wraps a message."""
    runner = CliRunner()

    def invoke(*args: str | Path) -> Result:
        return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})

    return invoke


@pytest.fixture(autouse=True)
def _one_worker_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI commands run one worker unless a test passes --workers: fake engines live in this process.

    (``--workers`` defaults to the cores this process may use; ``$SPECREAD_WORKERS`` overrides it.)
    """
    monkeypatch.setenv("SPECREAD_WORKERS", "1")


@pytest.fixture(autouse=True)
def _real_ocr_only_in_slow_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that loads the real OCR models in this process must carry ``@pytest.mark.slow``.

    ``pytest -m "not slow"`` is then the fast suite, and a test that starts using the real
    engine by accident fails here instead of quietly slowing every run.
    """
    if request.node.get_closest_marker("slow"):
        return

    def refuse(self: rapid.RapidOcrEngine) -> None:
        pytest.fail(f"{request.node.nodeid} loads the real OCR engine: mark it @pytest.mark.slow")

    monkeypatch.setattr(rapid.RapidOcrEngine, "load", refuse)
