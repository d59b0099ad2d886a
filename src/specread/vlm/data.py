"""Training examples for the VLM: (image, entity, target answer) from a cleaned label CSV.

The target is the label re-formatted as specread writes answers (``"500.0 gram"``)
or ``"blank"`` for an empty label, so the model learns to say nothing rather
than invent a value. Empty labels come from ``specread clean`` (units that
cannot be converted exactly are blanked) and, optionally, from *negatives*:
for a share of images the model is also asked about an entity of a dimension
that none of that image's labels has (a voltage on a food pack), with
``"blank"`` as the answer. Negatives are an assumption (an image may show a
value nobody labelled), which is why their rate is a visible option.

Batches are drawn from a seeded permutation per epoch, computed from the
global position alone, so training resumed at step ``s`` sees exactly the
examples an uninterrupted run would have seen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specread.errors import AnswerFormatError, InputFormatError
from specread.io.dataset import image_name, iter_labels
from specread.units.registry import ENTITIES, get_registry
from specread.vlm.prompt import target_text

__all__ = ["Example", "batch_examples", "load_examples", "split_by_image"]


@dataclass(frozen=True, slots=True)
class Example:
    """One training or validation question: which entity to read off which image, and the answer."""

    image: Path
    entity: str
    answer: str
    """The target text: ``"500.0 gram"`` or ``"blank"``."""
    value: str = ""
    """The label as in the CSV (empty for blank), for scoring."""
    group_id: str = ""


def load_examples(
    csv_path: str | Path,
    images_dir: str | Path,
    negatives: float = 0.0,
    seed: int = 0,
) -> tuple[list[Example], int]:
    """Examples from a label CSV (``image_link,group_id,entity_name,entity_value``).

    Args:
        csv_path: cleaned training labels; an empty ``entity_value`` is a blank answer.
        images_dir: folder of images named by the file name of ``image_link``.
        negatives: share of images that also get one question about an
            entity of another dimension, answered ``"blank"``.
        seed: seed for choosing negatives.

    Returns:
        ``(examples, rows_without_image)``: rows whose image file is missing are left out and counted.

    Raises:
        InputFormatError: missing columns, an unknown entity or a label that is not ``<number> <unit>``.
    """
    registry = get_registry()
    images = Path(images_dir)
    rng = random.Random(seed)
    examples: list[Example] = []
    missing = 0
    by_image: dict[Path, set[str]] = {}
    for label in iter_labels(csv_path):
        entity = label.entity_name
        if entity not in registry.entities:
            raise InputFormatError(str(csv_path), f"line {label.line}: unknown entity {entity!r}")
        path = images / image_name(label.image_link)
        if not path.is_file():
            missing += 1
            continue
        try:
            target = target_text(label.entity_value)
        except AnswerFormatError as exc:
            raise InputFormatError(str(csv_path), f"line {label.line}: {exc} (clean the labels first)") from None
        examples.append(Example(path, entity, target, label.entity_value, label.group_id))
        by_image.setdefault(path, set()).add(registry.entity(entity).dimension)
    if negatives > 0:
        for path, dims in by_image.items():
            if rng.random() < negatives:
                choices = [e for e in ENTITIES if registry.entity(e).dimension not in dims]
                if choices:
                    examples.append(Example(path, rng.choice(choices), target_text(""), ""))
    return examples, missing


def split_by_image(examples: Sequence[Example], fraction: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """``(train, validation)`` with every image on one side only (no leak through shared images)."""
    images = sorted({e.image for e in examples})
    rng = random.Random(seed)
    rng.shuffle(images)
    held = set(images[: round(len(images) * fraction)])
    return [e for e in examples if e.image not in held], [e for e in examples if e.image in held]


def batch_examples(examples: Sequence[Example], step: int, batch_size: int, seed: int) -> list[Example]:
    """The examples of optimizer step ``step``: positions ``step*B .. step*B+B-1`` of the epoch permutations."""
    n = len(examples)
    if n == 0:
        raise ValueError("no training examples")
    out = []
    cache: dict[int, np.ndarray] = {}
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(pos, n)
        if epoch not in cache:
            cache[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(examples[int(cache[epoch][offset])])
    return out
