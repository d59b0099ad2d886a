"""Synthetic product-label images with known answers.

The project never ships Amazon's images: tests, the bundled example and the
VLM overfit test draw their own labels here. Each image carries one or more
printed values (in a chosen unit and spelling) among distractor text, and the
generator returns the gold answer for each entity, so end-to-end runs can be
scored exactly. Pillow's bundled scalable font keeps this font-independent.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from specread.answer import format_prediction

__all__ = ["SPECS", "LabelSpec", "make_dataset", "render_label"]


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
