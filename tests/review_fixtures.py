"""Builders for the review tests: generated label images whose OCR pages are already in a cache.

Each image is drawn here with Pillow and its OCR page written from the same drawing (every
line's box is where the line was drawn), then stored in an :class:`OcrCache` under the engine
fingerprint the reader will use. A reader (in this process, or a ``specread review`` server in
another) then finds every page in the cache and never runs an OCR model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from conftest import FakeEngine, TinyDataset, write_csv
from specread.io.images import image_digest
from specread.ocr.cache import OcrCache
from specread.types import OcrPage, OcrToken

__all__ = ["REVIEW_SPECS", "ReviewData", "accurate_fingerprint", "build_review_data", "draw_label"]

# (printed lines, entity asked, the prediction under review, its confidence)
REVIEW_SPECS: tuple[tuple[tuple[str, ...], str, str, float], ...] = (
    (("Width 25 cm", "Height 40 cm", "Depth 10 in"), "width", "25.0 centimetre", 0.90),
    (("Net Wt. 500 g", "Serving 250 g"), "item_weight", "250.0 gram", 0.30),
    (("Input 230V", "Power 60W"), "voltage", "230.0 volt", 0.60),
    (("Capacity 2 L", "Keep dry"), "item_volume", "2.0 litre", 0.10),
)
"""Queue order by confidence: rows 3, 1, 2, 0."""


def draw_label(lines: tuple[str, ...], seed: int, size: tuple[int, int] = (520, 300)) -> tuple[Image.Image, OcrPage]:
    """An image with ``lines`` printed, and the OCR page that reads it exactly (boxes where the text is)."""
    width, height = size
    img = Image.new("RGB", size, (250, 250 - seed % 7, 245))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=34)
    tokens = []
    for n, line in enumerate(lines):
        x, y = 30 + 8 * seed, 30 + 80 * n
        draw.text((x, y), line, fill=(20, 20, 20), font=font)
        x0, y0, x1, y1 = draw.textbbox((x, y), line, font=font)
        quad = (
            (x0 / width, y0 / height),
            (x1 / width, y0 / height),
            (x1 / width, y1 / height),
            (x0 / width, y1 / height),
        )
        tokens.append(OcrToken(line, 0.97, quad))
    return img, OcrPage(tuple(tokens), width, height)


def accurate_fingerprint() -> str:
    """The OCR cache fingerprint of the default (accurate) preset's engine; building it loads no model."""
    from specread.ocr.engine import build_engine
    from specread.settings import preset

    return build_engine(preset("accurate")).fingerprint()


@dataclass
class ReviewData(TinyDataset):
    """:class:`TinyDataset`'s folder, plus a predictions CSV to review and the cached OCR pages of its images.

    ``rows`` are ``(index, image_name, entity, prediction)``; ``confidences`` the predictions' confidences.
    """

    confidences: list[float] = field(default_factory=list)

    @property
    def predictions_csv(self) -> Path:
        return self.root / "predictions.csv"

    @property
    def cache(self) -> Path:
        return self.root / "ocr-cache"


def build_review_data(root: Path, fingerprint: str, with_confidence: bool = True) -> ReviewData:
    """Images, input and predictions CSVs, and the pages (cached under ``fingerprint``) of :data:`REVIEW_SPECS`."""
    data = ReviewData(root, FakeEngine())
    data.images.mkdir(parents=True, exist_ok=True)
    cache = OcrCache(data.cache, fingerprint)
    for n, (lines, entity, prediction, confidence) in enumerate(REVIEW_SPECS):
        name = f"label_{n}.png"
        img, page = draw_label(lines, seed=n)
        img.save(data.images / name)
        cache.put(image_digest((data.images / name).read_bytes()), page)
        data.rows.append((str(n), name, entity, prediction))
        data.confidences.append(confidence)
    write_csv(
        data.input_csv,
        ["index", "image_link", "group_id", "entity_name"],
        [(i, data.link(name), "7", e) for i, name, e, _ in data.rows],
    )
    confidence = [[f"{c:.4f}"] if with_confidence else [] for c in data.confidences]
    write_csv(
        data.predictions_csv,
        ["index", "prediction", *(["confidence"] if with_confidence else [])],
        [(i, p, *c) for (i, _, _, p), c in zip(data.rows, confidence, strict=True)],
    )
    return data
