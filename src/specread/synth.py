"""Synthetic product-label images with known answers.

The project never ships Amazon's images: tests, the bundled example and the
VLM overfit test draw their own labels here. Each image carries one or more
printed values (in a chosen unit and spelling) among distractor text, and the
generator returns the gold answer for each entity, so end-to-end runs can be
scored exactly. Pillow's bundled scalable font keeps this font-independent.

:func:`synth_pages` skips the pixels: it generates labelled OCR pages (tokens,
boxes, dimension lines) directly, fast enough for training runs at the full
train set's size (``benchmarks/train_scale.py``).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from specread.answer import Answer, format_prediction
from specread.types import LabelledRow, OcrPage, OcrToken

__all__ = ["SPECS", "TRAIN_MIX", "LabelSpec", "make_dataset", "render_label", "synth_pages"]


@dataclass(frozen=True)
class LabelSpec:
    """One generated image: printed lines and the gold answer per entity."""

    lines: tuple[str, ...]
    answers: dict[str, tuple[float, str]]
    vertical: str = ""  # a line drawn rotated 90 degrees (heights on dimension drawings)


# (printed template, entity, canonical unit, value choices)
SPECS: tuple[tuple[str, str, str, tuple[float, ...]], ...] = (
    ("Net Wt. {v} g", "item_weight", "gram", (50, 100, 150, 250, 340, 500, 750)),
    ("NET WEIGHT {v} kg", "item_weight", "kilogram", (1, 2, 5, 10, 25)),
    ("Net Wt {v} oz", "item_weight", "ounce", (4, 8, 12, 16)),
    ("{v} mg per tablet", "item_weight", "milligram", (200, 250, 500, 1000)),
    ("{v} ml", "item_volume", "millilitre", (100, 250, 330, 500, 750)),
    ("{v} FL OZ", "item_volume", "fluid ounce", (8, 12, 16, 32)),
    ("Capacity {v} L", "item_volume", "litre", (1, 2, 5, 10)),
    ("Input {v}V", "voltage", "volt", (5, 12, 24, 110, 220, 230)),
    ("Power {v}W", "wattage", "watt", (20, 60, 100, 750, 1200, 1500, 2000)),
    ("Max load {v} kg", "maximum_weight_recommendation", "kilogram", (50, 100, 120, 150, 200)),
    ("Width {v} cm", "width", "centimetre", (20, 25, 30, 45, 60)),
    ("Height {v} cm", "height", "centimetre", (10, 15, 35, 80, 120)),
    ("Depth {v} in", "depth", "inch", (4, 6, 8, 12)),
)

DISTRACTORS = (
    "Premium Quality",
    "Made in EU",
    "Natural",
    "NEW",
    "Best before see pack",
    "Keep dry",
    "Organic",
    "Model SR-7",
)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_label(spec: LabelSpec, size: tuple[int, int] = (640, 480), seed: int = 0) -> Image.Image:
    """Draw the lines of ``spec`` in dark ink on a light background, values in large print."""
    rng = random.Random(seed)
    bg = tuple(rng.randint(225, 255) for _ in range(3))
    img = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(img)
    y = 30
    for i, line in enumerate(spec.lines):
        font_size = 44 if i == 0 else 30
        ink = tuple(rng.randint(0, 60) for _ in range(3))
        draw.text((40 + rng.randint(0, 30), y), line, fill=ink, font=_font(font_size))
        y += font_size + 30
    if spec.vertical:
        font = _font(34)
        box = draw.textbbox((0, 0), spec.vertical, font=font)
        strip = Image.new("RGB", (box[2] + 10, box[3] + 10), bg)
        ImageDraw.Draw(strip).text((5, 5), spec.vertical, fill=(0, 0, 0), font=font)
        strip = strip.rotate(90, expand=True)
        img.paste(strip, (size[0] - strip.width - 20, (size[1] - strip.height) // 2))
    return img


def random_spec(rng: random.Random, n_values: int = 1) -> LabelSpec:
    chosen = rng.sample(SPECS, n_values)
    lines: list[str] = []
    answers: dict[str, tuple[float, str]] = {}
    for template, entity, unit, values in chosen:
        if entity in answers:
            continue
        v = rng.choice(values)
        lines.append(template.format(v=v))
        answers[entity] = (float(v), unit)
    lines.extend(rng.sample(DISTRACTORS, 2))
    return LabelSpec(tuple(lines), answers)


def make_dataset(out_dir: str | Path, n_images: int = 12, seed: int = 0, n_values: int = 1) -> Path:
    """Write ``images/``, ``input.csv`` (challenge format) and ``gold.csv`` under ``out_dir``.

    Returns:
        The path of ``input.csv``.
    """
    rng = random.Random(seed)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    index = 0
    with open(out / "input.csv", "w", newline="") as fi, open(out / "gold.csv", "w", newline="") as fg:
        wi, wg = csv.writer(fi), csv.writer(fg)
        wi.writerow(["index", "image_link", "group_id", "entity_name"])
        wg.writerow(["index", "image_link", "group_id", "entity_name", "entity_value"])
        for n in range(n_images):
            spec = random_spec(rng, n_values)
            name = f"label_{seed}_{n:04d}.png"
            render_label(spec, seed=seed * 100_003 + n).save(out / "images" / name)
            link = f"https://example.invalid/images/{name}"
            for entity, (value, unit) in spec.answers.items():
                wi.writerow([index, link, "0", entity])
                wg.writerow([index, link, "0", entity, format_prediction(value, unit)])
                index += 1
    return out / "input.csv"


# -- labelled OCR pages without images (training at scale) --------------------------------------

TRAIN_MIX: dict[str, int] = {
    "item_weight": 102029,
    "depth": 45077,
    "width": 44143,
    "height": 43557,
    "voltage": 9402,
    "wattage": 7688,
    "item_volume": 7631,
    "maximum_weight_recommendation": 3239,
}
"""Labelled rows per entity in the official train set (the mix :func:`synth_pages` draws)."""

_DIMENSIONS = ("width", "height", "depth")
_WORDS = (
    "Premium", "Organic", "Stainless", "Steel", "Coffee", "Storage", "Box", "Natural", "Shelf", "Lamp",
    "Blender", "Classic", "Heavy", "Duty", "Kitchen", "Garden", "Pro", "Series", "Bamboo", "Tea",
)  # fmt: skip
_NOTES = (
    "Made in EU", "Keep dry", "Best before see pack", "Model SR-7", "NEW", "Easy to clean", "2 year warranty",
    "Dishwasher safe", "BPA free", "Item no. 40213", "www.example.com", "Store below 25 C",
)  # fmt: skip
# (template, canonical unit, values) per entity: what a product label prints for it.
_LABEL_LINES: dict[str, tuple[tuple[str, str, tuple[float, ...]], ...]] = {
    "item_weight": (
        ("Net Wt. {v} g", "gram", (50, 100, 125, 150, 250, 340, 454, 500, 750)),
        ("NET WEIGHT {v} kg", "kilogram", (0.5, 1, 1.5, 2, 5, 10, 25)),
        ("Net Wt {v} oz", "ounce", (4, 8, 12, 16, 24)),
        ("{v} lbs", "pound", (1, 2, 5, 10, 20)),
        ("{v} mg per tablet", "milligram", (200, 250, 500, 1000)),
        ("Weight: {v}kg", "kilogram", (1.2, 2.5, 3.8, 7.5, 12)),
        ("{v}g", "gram", (30, 80, 200, 400, 1000)),
    ),
    "item_volume": (
        ("{v} ml", "millilitre", (100, 250, 330, 500, 750)),
        ("{v} FL OZ", "fluid ounce", (8, 12, 16, 32)),
        ("Capacity {v} L", "litre", (1, 1.5, 2, 5, 10)),
        ("Contents {v}ml", "millilitre", (50, 150, 400, 1000)),
    ),
    "voltage": (
        ("Input {v}V", "volt", (5, 12, 24, 110, 220, 230)),
        ("Rated voltage: {v} V", "volt", (3.7, 7.4, 12, 18, 36)),
        ("DC {v}V", "volt", (5, 9, 12, 24)),
    ),
    "wattage": (
        ("Power {v}W", "watt", (20, 60, 100, 750, 1200, 1500, 2000)),
        ("{v} Watts", "watt", (5, 9, 40, 65, 100)),
        ("Output {v} kW", "kilowatt", (1, 1.5, 2, 3)),
    ),
    "maximum_weight_recommendation": (
        ("Max load {v} kg", "kilogram", (50, 100, 120, 150, 200)),
        ("Supports up to {v} lbs", "pound", (100, 200, 250, 300, 400)),
        ("Capacity {v}kg", "kilogram", (5, 15, 30, 60)),
    ),
}
_DISTRACTOR_LINES: tuple[str, ...] = (
    "Serving size {v} g", "Per 100 g", "{v}% more", "Input 100-240V 50/60Hz", "Size: {v} x 15 x 8 cm",
    "Max load {v} kg", "Power {v}W", "{v} ml", "Net Wt {v} g", "5V 2A", "Ø {v} mm", "Pack of {v}",
    "Protein {v} g", "Fat {v} g", "Sugars {v} g", "Energy {v} kcal", "Battery 3.7V {v}mAh",
)  # fmt: skip
# A dimension's values per unit, and the inch twin's factor for "25.4 cm / 10 in".
_DIM_UNITS: tuple[tuple[str, str, float, int, int], ...] = (
    ("cm", "centimetre", 2.54, 5, 180),
    ("in", "inch", 1.0, 2, 72),
    ("mm", "millimetre", 25.4, 40, 1500),
)


def _box_token(text: str, x0: float, y0: float, x1: float, y1: float, score: float) -> OcrToken:
    return OcrToken(text, score, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def _down_token(text: str, x0: float, y0: float, x1: float, y1: float, score: float) -> OcrToken:
    """A line of text rotated to run top to bottom (the quad starts at the top right)."""
    return OcrToken(text, score, ((x1, y0), (x1, y1), (x0, y1), (x0, y0)))


class _PageBuilder:
    """Places OCR lines on a page in relative coordinates, like an OCR engine reports them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.width = rng.choice((800, 1000, 1200, 1500))
        self.height = rng.choice((800, 1000, 1200, 1500))
        self.tokens: list[OcrToken] = []
        self.segments: list[tuple[float, float, float, float]] = []

    def line(self, text: str, x: float, y: float, size: float) -> tuple[float, float, float, float]:
        """A horizontal line of ``size`` (relative text height) starting at (x, y); returns its box."""
        w = min(0.98 - x, 0.55 * size * len(text) * self.height / self.width)
        box = (x, y, x + max(w, 0.01), min(0.99, y + size))
        self.tokens.append(_box_token(text, *box, round(self.rng.uniform(0.6, 1.0), 3)))
        return box

    def column(self, text: str, x: float, y: float, size: float) -> None:
        """Text printed top to bottom: rotated by the OCR engine, or read as a tall narrow box."""
        h = min(0.98 - y, 0.55 * size * len(text) * self.width / self.height)
        make = _down_token if self.rng.random() < 0.6 else _box_token
        self.tokens.append(make(text, x, y, x + size, y + max(h, 0.01), round(self.rng.uniform(0.6, 1.0), 3)))

    def page(self) -> OcrPage:
        self.rng.shuffle(self.tokens)  # OCR engines do not report lines in reading order
        return OcrPage(tuple(self.tokens), self.width, self.height, tuple(self.segments))


def _number(value: float) -> str:
    return f"{value:g}"


def _label_page(rng: random.Random, entities: list[str]) -> tuple[OcrPage, dict[str, str]]:
    """A product label: a title, spec lines for ``entities`` and for others, notes; gold per entity."""
    b = _PageBuilder(rng)
    b.line(" ".join(rng.sample(_WORDS, rng.randint(1, 3))), 0.05, 0.04, rng.uniform(0.06, 0.1))
    lines: list[tuple[str, float]] = []
    gold: dict[str, str] = {}
    for entity in entities:
        template, unit, values = rng.choice(_LABEL_LINES[entity])
        value = float(rng.choice(values))
        text = template.format(v=_number(value))
        if entity == "item_weight" and unit == "gram" and rng.random() < 0.25:
            ounces = round(value / 28.3495, 1)
            text = rng.choice(("NET WT {o} OZ ({g} g)", "{o}oz/{g}g")).format(o=_number(ounces), g=_number(value))
            if rng.random() < 0.35:  # real labels mostly record the grams, sometimes the ounces
                value, unit = ounces, "ounce"
        gold[entity] = Answer(value, unit).text
        lines.append((text, rng.uniform(0.04, 0.09)))
    for _ in range(rng.randint(1, 6)):
        lines.append((rng.choice(_DISTRACTOR_LINES).format(v=rng.choice((2, 5, 12, 30, 45, 250))), 0.03))
    lines.extend((note, 0.03) for note in rng.sample(_NOTES, rng.randint(1, 4)))
    rng.shuffle(lines)
    y = 0.16
    for text, size in lines:
        if y + size > 0.97:
            break
        b.line(text, rng.uniform(0.03, 0.3), y, size)
        y += size + rng.uniform(0.01, 0.05)
    return b.page(), gold


def _drawing_page(rng: random.Random, entities: list[str]) -> tuple[OcrPage, dict[str, str]]:
    """A dimension drawing: width under a horizontal line, height beside a vertical one, depth on a slant."""
    b = _PageBuilder(rng)
    symbol, unit, per_inch, low, high = rng.choice(_DIM_UNITS)
    sizes = {e: float(rng.randint(low, high)) for e in _DIMENSIONS}
    twin = unit != "inch" and rng.random() < 0.2

    def printed(entity: str) -> str:
        text = f"{_number(sizes[entity])} {symbol}" if rng.random() < 0.7 else f"{_number(sizes[entity])}{symbol}"
        if twin:
            text += f" / {_number(round(sizes[entity] / per_inch, 1))} in"
        return text

    left, right = rng.uniform(0.1, 0.3), rng.uniform(0.6, 0.85)
    top, bottom = rng.uniform(0.15, 0.3), rng.uniform(0.65, 0.85)
    size = rng.uniform(0.025, 0.05)
    b.segments.append((left, bottom + 0.03, right, bottom + 0.03))
    b.line(printed("width"), (left + right) / 2 - 0.08, bottom + 0.045, size)
    b.segments.append((left - 0.04, top, left - 0.04, bottom))
    b.column(printed("height"), max(0.0, left - 0.04 - 1.8 * size), (top + bottom) / 2 - 0.1, size)
    if rng.random() < 0.6:
        b.segments.append((right, bottom, min(0.98, right + 0.12), bottom - 0.12))
        b.line(printed("depth"), min(0.8, right + 0.07), bottom - 0.05, size)
    for _ in range(rng.randint(0, 2)):  # product outline and detail lines
        x = rng.uniform(0.1, 0.8)
        b.segments.append((x, rng.uniform(0.2, 0.5), x + rng.uniform(-0.05, 0.05), rng.uniform(0.5, 0.8)))
    for _ in range(rng.choice((0, 0, 1, 2, 3))):  # details: a handle, a leg, a drawer
        b.line(f"{rng.randint(2, 15)} {symbol}", rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.6), size * 0.8)
    if rng.random() < 0.5:
        w, h, d = (_number(sizes[e]) for e in _DIMENSIONS)
        spec = rng.choice((f"Size: {w} x {h} x {d} {symbol}", f"W {w}{symbol} x H {h}{symbol} x D {d}{symbol}"))
        b.line(spec, 0.05, 0.92, 0.03)
    if rng.random() < 0.3:
        b.line(f"Weight {rng.choice((0.8, 1.5, 2.5, 4))} kg", 0.05, 0.05, 0.03)
    b.line(" ".join(rng.sample(_WORDS, 2)), 0.4, 0.05, 0.04)
    gold = {e: Answer(sizes[e], unit).text for e in entities}
    return b.page(), gold


def _noisy(rng: random.Random, gold: str, noise: float) -> str:
    """Labels are noisy: now and then the gold is a value the page does not print."""
    if rng.random() >= noise:
        return gold
    answer = Answer.parse(gold)
    return gold if answer is None else Answer(answer.value * rng.choice((2, 10, 0.5)) + 1, answer.unit).text


def synth_pages(
    n: int, seed: int = 0, n_groups: int = 1000, noise: float = 0.1, two_entities: float = 0.03
) -> Iterator[LabelledRow]:
    """``n`` labelled rows on generated OCR pages (no images, no OCR), deterministic for a seed.

    Entities follow :data:`TRAIN_MIX`; weights, volumes, voltages, wattages and
    loads are printed on product labels among distractor values and notes,
    widths, heights and depths on dimension drawings with their dimension
    lines (``segments``), twins in inches (``25.4 cm / 10 in``) and groups
    (``10 x 20 x 30 cm``). Rows carry one of ``n_groups`` product ``group_id``
    (a few groups are large, as in the real set); about ``two_entities`` of
    the pages answer two entities (two rows, one image key); a share
    ``noise`` of the labels name a value the page does not print.

    Example:
        >>> rows = list(synth_pages(3, seed=1))
        >>> len(rows), rows[0].entity in TRAIN_MIX
        (3, True)
    """
    rng = random.Random(seed)
    entities = list(TRAIN_MIX)
    weights = list(accumulate(TRAIN_MIX.values()))
    groups = range(n_groups)
    group_weights = list(accumulate(1.0 / (g + 1) ** 0.9 for g in groups))  # Zipf-like: a few big groups
    made = 0
    page_no = 0
    while made < n:
        first = rng.choices(entities, cum_weights=weights)[0]
        group = str(100000 + rng.choices(groups, cum_weights=group_weights)[0])
        asked = [first]
        if made + 1 < n and rng.random() < two_entities:
            pool = _DIMENSIONS if first in _DIMENSIONS else tuple(_LABEL_LINES)
            asked.append(rng.choice([e for e in pool if e != first]))
        page_rng = random.Random(f"{seed}:{page_no}")
        page, gold = (_drawing_page if first in _DIMENSIONS else _label_page)(page_rng, asked)
        key = f"synth-{seed}-{page_no:08d}.jpg"
        for entity in asked:
            yield LabelledRow(key, page, entity, group, _noisy(rng, gold[entity], noise))
            made += 1
        page_no += 1
