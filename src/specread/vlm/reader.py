"""VLM and hybrid readers with the OCR reader's interface.

``build_vlm_reader(config)`` returns an object with ``read(image, entities,
group_id=None) -> ReadResult``, so :func:`specread.batch.local.predict_csv`,
``specread read`` and the Ray runner use it unchanged:

* ``reader="vlm"``: one prompt per entity (batched across entities and, with
  :meth:`VlmReader.read_many`, across images), each answer parsed by
  specread's unit parser into a valid ``Prediction`` or an empty one;
* ``reader="hybrid"``: the OCR reader answers first; entities whose OCR
  confidence is under ``vlm_options["threshold"]`` are asked to the VLM, with
  the best OCR candidates as hints in the prompt (``VlmSettings.hints``).
  A VLM value replaces the OCR one; a VLM "blank" keeps the OCR answer.

Both are configured by :class:`specread.settings.VlmSettings` (``ReaderConfig.vlm``)
and registered as readers ``"vlm"`` and ``"hybrid"`` through the
``specread.readers`` entry points (see :mod:`specread.readers`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from specread.answer import format_prediction
from specread.io.images import decode_image, load_image, read_image_bytes
from specread.pipeline import SpecReader
from specread.readers import build_reader
from specread.settings import ReaderConfig, VlmSettings
from specread.types import Candidate, OcrPage, Prediction, ReadResult
from specread.units.registry import get_registry
from specread.vlm.base import VlmBackend
from specread.vlm.prompt import PromptTemplate, load_template, parse_answer

__all__ = ["HybridReader", "ImageInput", "VlmReader", "build_vlm_reader", "template_for"]

log = logging.getLogger("specread")

ImageInput = str | Path | bytes | np.ndarray | Image.Image
"""What the readers accept: a path, encoded bytes, an RGB array or a PIL image."""


def _to_pil(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        return Image.fromarray(image)
    if isinstance(image, bytes | bytearray):
        return Image.fromarray(decode_image(bytes(image)))
    arr, _ = load_image(image)
    return Image.fromarray(arr)


class VlmReader:
    """Reads entities by asking a VLM, one prompt per (image, entity).

    Args:
        backend: a :class:`~specread.vlm.base.VlmBackend`: an adapter from
            :mod:`specread.vlm.backends` or any object with
            ``generate(images, prompts, max_new_tokens) -> list[Generation]``.
        template: the prompt template.
        batch_size: prompts per ``generate`` call.
        max_new_tokens: answer length cap.
        batch_images: images the batch runner hands to one :meth:`read_many` call.
    """

    def __init__(
        self,
        backend: VlmBackend,
        template: PromptTemplate | None = None,
        batch_size: int = VlmSettings.batch_size,
        max_new_tokens: int = VlmSettings.max_new_tokens,
        batch_images: int = VlmSettings.batch_images,
    ) -> None:
        if batch_size < 1 or batch_images < 1:
            raise ValueError("batch_size and batch_images must be at least 1")
        self.backend = backend
        self.template = template or PromptTemplate()
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.batch_images = batch_images

    def blind_guess(self, entity: str, group_id: str | None = None) -> Prediction:
        """No answer: a VLM-only reader has no priors to guess from."""
        return Prediction(entity)

    def read(self, image: ImageInput, entities: Sequence[str], group_id: str | None = None) -> ReadResult:
        """Predict every requested entity of one image (``group_id`` is accepted for interface parity)."""
        return self.read_many([(image, entities)])[0]

    def read_many(
        self,
        items: Sequence[tuple[ImageInput, Sequence[str]] | tuple[ImageInput, Sequence[str], str | None]],
        hints: Sequence[dict[str, Sequence[str]]] | None = None,
    ) -> list[ReadResult]:
        """Predict several images at once, batching prompts across images.

        Args:
            items: ``(image, entities)`` pairs, or ``(image, entities, group_id)`` as for
                :meth:`HybridReader.read_many` (the group is not used by the VLM).
            hints: per item, OCR candidate texts per entity to put in the prompt.

        Raises:
            ImageLoadError: an image cannot be read (nothing is generated then).
            UnknownEntityError: an entity outside the challenge's eight.
        """
        registry = get_registry()
        pictures = [_to_pil(item[0]) for item in items]
        queue: list[tuple[int, str, str]] = []
        for i, (_, entities, *_group) in enumerate(items):
            for entity in entities:
                registry.entity(entity)
                entity_hints = list((hints[i] if hints else {}).get(entity, ()))
                queue.append((i, entity, self.template.render(entity, entity_hints)))
        answers: dict[tuple[int, str], Prediction] = {}
        for start in range(0, len(queue), self.batch_size):
            chunk = queue[start : start + self.batch_size]
            images = [pictures[i] for i, _, _ in chunk]
            gens = self.backend.generate(images, [p for _, _, p in chunk], self.max_new_tokens)
            for (i, entity, _), gen in zip(chunk, gens, strict=True):
                parsed = parse_answer(gen.text, entity)
                log.debug("vlm %s: %r -> %s", entity, gen.text, parsed)
                value, unit = parsed if parsed else (None, "")
                answers[(i, entity)] = Prediction(entity, value, unit, confidence=gen.confidence, source="vlm")
        return [
            ReadResult(
                OcrPage((), pic.width, pic.height),
                {e: answers[(i, e)] for e in entities},
                {},
            )
            for i, (pic, (_, entities, *_group)) in enumerate(zip(pictures, items, strict=True))
        ]


class HybridReader:
    """OCR first; the VLM answers the entities the OCR reader is unsure of.

    Args:
        ocr: the OCR :class:`~specread.pipeline.SpecReader`.
        vlm: the :class:`VlmReader`.
        threshold: OCR predictions with a confidence under this go to the VLM.
        hints: put the best OCR candidates into the VLM prompt.
        max_hints: at most this many distinct candidate values per entity.
    """

    def __init__(
        self,
        ocr: SpecReader,
        vlm: VlmReader,
        threshold: float = VlmSettings.threshold,
        hints: bool = VlmSettings.hints,
        max_hints: int = VlmSettings.max_hints,
    ) -> None:
        self.ocr = ocr
        self.vlm = vlm
        self.threshold = threshold
        self.hints = hints
        self.max_hints = max_hints

    @property
    def batch_images(self) -> int:
        return self.vlm.batch_images

    def blind_guess(self, entity: str, group_id: str | None = None) -> Prediction:
        """The OCR reader's fallback (the priors' guess)."""
        return self.ocr.blind_guess(entity, group_id)

    def candidate_hints(self, entity: str, cands: Sequence[Candidate]) -> list[str]:
        """Distinct candidate values, best OCR score first, in the challenge's format."""
        if not cands:
            return []
        scores = self.ocr.selector.scorer.score(entity, cands)
        ranked = sorted(range(len(cands)), key=lambda k: -scores[k])
        out: list[str] = []
        for k in ranked:
            text = format_prediction(cands[k].quantity.value, cands[k].quantity.unit)
            if text not in out:
                out.append(text)
            if len(out) == self.max_hints:
                break
        return out

    def read(self, image: ImageInput, entities: Sequence[str], group_id: str | None = None) -> ReadResult:
        """OCR-read every entity, then re-ask the VLM for the unsure ones."""
        return self.read_many([(image, entities, group_id)])[0]

    def read_many(self, items: Sequence[tuple[ImageInput, Sequence[str], str | None]]) -> list[ReadResult]:
        """Several images: one OCR pass each, then the unsure entities of all of them in shared VLM batches."""
        data = [_readable(image) for image, _, _ in items]
        firsts = [self.ocr.read(d, entities, group) for d, (_, entities, group) in zip(data, items, strict=True)]
        asks: list[tuple[int, list[str]]] = []
        for i, (first, (_, entities, _)) in enumerate(zip(firsts, items, strict=True)):
            unsure = [e for e in entities if first.predictions[e].confidence < self.threshold]
            if unsure:
                asks.append((i, unsure))
        if not asks:
            return firsts
        hints = [
            {e: self.candidate_hints(e, firsts[i].candidates.get(e, [])) for e in unsure} if self.hints else {}
            for i, unsure in asks
        ]
        seconds = self.vlm.read_many([(data[i], unsure) for i, unsure in asks], hints)
        out = list(firsts)
        for (i, unsure), second in zip(asks, seconds, strict=True):
            preds = dict(firsts[i].predictions)
            for e in unsure:
                if second.predictions[e].value is not None:
                    preds[e] = second.predictions[e]
            out[i] = ReadResult(firsts[i].page, preds, firsts[i].candidates)
        return out


def _readable(image: ImageInput) -> bytes | np.ndarray:
    """Bytes for paths (the OCR cache keys on content; one read serves both models), arrays as they are."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, str | Path):
        return read_image_bytes(image)
    return image


def template_for(model: str | Path, settings: VlmSettings) -> PromptTemplate:
    """The prompt: the ``prompt_template`` file, else the fine-tuned model's card, else the default."""
    if settings.prompt_template:
        return load_template(settings.prompt_template)
    card = Path(model) / "specread_vlm.json"
    if card.is_file():
        data = json.loads(card.read_text(encoding="utf-8"))
        return PromptTemplate(data["template"], data.get("hint_suffix", PromptTemplate().hint_suffix))
    return PromptTemplate()


def build_vlm_reader(config: ReaderConfig) -> VlmReader | HybridReader:
    """Build the reader for ``config.reader`` ``"vlm"`` or ``"hybrid"`` from ``config.vlm``.

    Raises:
        ValueError: no model, or an unknown reader name.

    Example:
        >>> from specread.readers import build_reader
        >>> from specread.settings import ReaderConfig, VlmSettings
        >>> reader = build_reader(ReaderConfig(reader="vlm", vlm=VlmSettings(model="models/vlm")))  # doctest: +SKIP
        >>> reader.read("label.png", ["item_weight"]).predictions["item_weight"].text  # doctest: +SKIP
        '500.0 gram'
    """
    from specread.vlm.backends import load_backend

    if config.reader not in ("vlm", "hybrid"):
        raise ValueError(f"build_vlm_reader builds vlm or hybrid readers, not {config.reader!r}")
    opts = config.vlm
    if not opts.model:
        raise ValueError(f"reader {config.reader!r} needs a model (VlmSettings.model, --vlm-model: a VLM folder or id)")
    backend = load_backend(
        opts.model,
        device=opts.device or None,
        dtype=opts.dtype or None,
        trust_remote_code=opts.trust_remote_code,
        revision=opts.revision or None,
    )
    vlm = VlmReader(
        backend,
        template_for(opts.model, opts),
        batch_size=opts.batch_size,
        max_new_tokens=opts.max_new_tokens,
        batch_images=opts.batch_images,
    )
    if config.reader == "vlm":
        return vlm
    ocr = build_reader(dataclasses.replace(config, reader="ocr"))
    assert isinstance(ocr, SpecReader)
    return HybridReader(ocr, vlm, threshold=opts.threshold, hints=opts.hints, max_hints=opts.max_hints)
