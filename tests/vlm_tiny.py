"""Test fixture: tiny random VLMs built locally, so the VLM tests run offline.

No weights can be downloaded where specread is tested, so the tests build a
real transformers architecture (LLaVA: a CLIP vision tower, a projector and a
Llama decoder) from a config with a few hundred thousand random weights, a
byte-level BPE tokenizer trained on the prompt and answer vocabulary, and the
architecture's own image processor with small sizes. The result is saved the
way any hub model is (``config.json``, ``model.safetensors``, tokenizer and
processor files, chat template), so the code under test loads it through
``AutoProcessor`` / ``AutoModelForImageTextToText`` exactly as it would load a
real checkpoint. It knows nothing until fine-tuned.

A test helper, not part of the package: the VLM tests import it as
``vlm_tiny``, as they import ``conftest`` (pytest puts ``tests/`` on ``sys.path``). It needs
the ``vlm`` extra (torch, transformers, tokenizers) only when a builder runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from specread.answer import format_prediction
from specread.units.registry import ENTITIES, get_registry
from specread.vlm.prompt import BLANK, PromptTemplate

__all__ = ["CHAT_TEMPLATE", "build_tiny_llava", "build_tokenizer", "tokenizer_corpus"]

SPECIAL_TOKENS = ("<pad>", "<s>", "<|end|>", "<image>", "<|user|>", "<|assistant|>")

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
"""A minimal chat template: ``<|user|><image>\\n{prompt}<|end|><|assistant|>`` then the answer and ``<|end|>``."""


def tokenizer_corpus(template: PromptTemplate | None = None) -> list[str]:
    """Text the tiny tokenizer is trained on: every entity's prompt and plausible answers."""
    template = template or PromptTemplate()
    registry = get_registry()
    texts = [template.render(e) for e in ENTITIES] + [template.render(e, ["1.0 gram"]) for e in ENTITIES]
    values = [0.5, 1, 2, 5, 10, 12, 16, 25, 50, 100, 110, 220, 230, 240, 250, 500, 750, 1000, 1500]
    for entity in ENTITIES:
        texts += [format_prediction(v, u) for u in registry.allowed(entity) for v in values]
    texts += [BLANK, "0123456789 .,-"]
    return texts


def build_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 600) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``corpus`` (default :func:`tokenizer_corpus`).

    Byte-level, so any text encodes and decodes back exactly; special tokens
    ``<s>`` (BOS), ``<|end|>`` (EOS), ``<pad>``, ``<image>``, ``<|user|>``, ``<|assistant|>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(corpus if corpus is not None else tokenizer_corpus()), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="<|end|>", pad_token="<pad>", unk_token=None
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<|user|>", "<|assistant|>"]})
    return tokenizer


def build_tiny_llava(
    out_dir: str | Path,
    corpus: Iterable[str] | None = None,
    seed: int = 0,
    image_size: int = 56,
    patch_size: int = 14,
    vocab_size: int = 600,
    hidden_size: int = 64,
    vision_hidden_size: int = 32,
    vision_init: float = 1.0,
    chat_template: str | None = CHAT_TEMPLATE,
) -> Path:
    """Build and save a random LLaVA-architecture VLM of about half a million weights.

    Args:
        out_dir: folder to write (created).
        corpus: texts to train the BPE tokenizer on (default: :func:`tokenizer_corpus`).
        seed: weight initialisation seed.
        image_size: images are resized (not cropped) to this square size.
        patch_size: vision patch size; ``(image_size // patch_size) ** 2`` image tokens per image.
        vocab_size: BPE vocabulary size (byte-level, so any text still encodes).
        hidden_size: decoder width.
        vision_hidden_size: vision tower width.
        vision_init: CLIP's ``initializer_factor`` (larger: more varied random image features).
        chat_template: saved with the processor; ``None`` exercises the no-template prompt path.

    Returns:
        ``out_dir``, loadable with :func:`specread.vlm.backends.load_backend`.

    Example:
        >>> from vlm_tiny import build_tiny_llava   # doctest: +SKIP
        >>> path = build_tiny_llava("/tmp/tiny-vlm")   # doctest: +SKIP
    """
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # transformers 4.x: the PIL processor is the plain one
        from transformers import CLIPImageProcessor as ImageProcessor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(corpus, vocab_size)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    side = {"height": image_size, "width": image_size}
    image_processor = ImageProcessor(size=side, crop_size=side, do_center_crop=False)
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=chat_template,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by the "default" strategy
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=vision_hidden_size,
            intermediate_size=vision_hidden_size * 2,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch_size,
            projection_dim=vision_hidden_size,
            initializer_factor=vision_init,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=hidden_size * 2,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            bos_token_id=ids["<s>"],
            eos_token_id=ids["<|end|>"],
            pad_token_id=ids["<pad>"],
        ),
        image_token_index=ids["<image>"],
        image_seq_length=(image_size // patch_size) ** 2,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = ids["<s>"], ids["<|end|>"], ids["<pad>"]
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    return out
