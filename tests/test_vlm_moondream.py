"""Moondream2 wiring, tested with stand-ins exposing its documented methods.

Moondream2's code comes with its weights (remote code), which cannot be
downloaded here. These stand-ins expose the same methods with the same
signatures: the 2025 API (``encode_image`` + ``query(image, question)["answer"]``)
and the 2024 API (``encode_image`` + ``answer_question(embeds, question,
tokenizer)``, ``batch_answer(images, prompts, tokenizer)``, and for
fine-tuning ``vision_encoder(images) -> embeddings`` plus a Hugging Face
causal LM as ``text_model``). The training stand-in is a real tiny network,
so the loss, masking and LoRA paths run for real.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the vlm extra is not installed")
pytest.importorskip("transformers", reason="the vlm extra is not installed")
pytest.importorskip("peft", reason="the vlm extra is not installed")

import torch
from PIL import Image
from transformers import LlamaConfig, LlamaForCausalLM

from specread.vlm import backends
from specread.vlm.backends import MoondreamBackend, TrainableVlmBackend, load_backend
from specread.vlm.finetune import FinetuneConfig, finetune
from specread.vlm.prompt import PromptTemplate
from specread.vlm.reader import VlmReader
from vlm_tiny import build_tokenizer


class _QueryMoondream:
    """The 2025 revisions' inference surface."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.encoded: list[Image.Image] = []
        self.questions: list[str] = []

    def encode_image(self, image: Image.Image) -> object:
        self.encoded.append(image)
        return ("encoded", len(self.encoded))

    def query(self, image: object, question: str, stream: bool = False) -> dict:
        assert isinstance(image, tuple) and image[0] == "encoded"
        self.questions.append(question)
        return {"answer": self.answer}


class _VisionEncoder(torch.nn.Module):
    """Like Moondream's ``vision_encoder``: a list of PIL images -> (batch, tokens, dim) embeddings."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, dim)

    def forward(self, images: list[Image.Image]) -> torch.Tensor:
        pix = np.stack([np.asarray(im.convert("RGB").resize((4, 4)), dtype=np.float32) / 255 for im in images])
        return self.proj(torch.from_numpy(pix).reshape(len(images), 16, 3))


class _LegacyMoondream(torch.nn.Module):
    """The 2024 revisions: ``vision_encoder`` + ``text_model`` (a HF causal LM) + the answer methods."""

    def __init__(self, vocab: int, dim: int = 32, answer: str = "") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.vision_encoder = _VisionEncoder(dim)
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=dim,
            intermediate_size=dim * 2,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )
        self.text_model = LlamaForCausalLM(config)
        self.answer = answer
        self.calls: list[tuple[str, object]] = []

    def encode_image(self, image: Image.Image) -> torch.Tensor:
        with torch.no_grad():
            return self.vision_encoder([image])

    def answer_question(self, image_embeds: torch.Tensor, question: str, tokenizer: object, **kwargs) -> str:
        assert image_embeds.shape[0] == 1 and tokenizer is not None
        self.calls.append(("answer_question", question))
        return f" {self.answer} "

    def save_pretrained(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), Path(path) / "standin.pt")


class _BatchMoondream(_LegacyMoondream):
    def batch_answer(self, images: list, prompts: list[str], tokenizer: object, **kwargs) -> list[str]:
        self.calls.append(("batch_answer", list(prompts)))
        return [self.answer] * len(prompts)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(vocab_size=400)


def _image(color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (32, 24), color)


def test_query_api_encodes_each_image_once_and_parses_answers() -> None:
    model = _QueryMoondream("12.0 volt")
    reader = VlmReader(MoondreamBackend(model), batch_size=8)
    result = reader.read(_image((200, 10, 10)), ["voltage", "wattage", "item_weight"])
    assert len(model.encoded) == 1 and len(model.questions) == 3
    assert model.questions[0] == PromptTemplate().render("voltage")
    assert result.predictions["voltage"].text == "12.0 volt"
    assert result.predictions["wattage"].text == "" and result.predictions["item_weight"].text == ""


def test_legacy_api_uses_batch_answer_then_answer_question(tokenizer) -> None:
    batched = _BatchMoondream(len(tokenizer), answer="2 kg")
    out = MoondreamBackend(batched, tokenizer).generate([_image((1, 2, 3))] * 2, ["q1", "q2"])
    assert [g.text for g in out] == ["2 kg", "2 kg"] and batched.calls == [("batch_answer", ["q1", "q2"])]
    single = _LegacyMoondream(len(tokenizer), answer="blank")
    out = MoondreamBackend(single, tokenizer).generate([_image((1, 2, 3))], ["q"])
    assert out[0].text == "blank" and single.calls == [("answer_question", "q")]


def test_load_backend_routes_moondream_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "moondream1"}), encoding="utf-8")
    seen = []
    monkeypatch.setattr(backends.MoondreamBackend, "load", classmethod(lambda cls, path, **kw: seen.append(path)))
    load_backend(tmp_path)
    assert seen == [tmp_path]


def _answers(model: _LegacyMoondream, backend: MoondreamBackend, images, prompts, answers) -> list[list[int]]:
    """Teacher-forced argmax over each answer's tokens (checks the label alignment too)."""
    tok = backend.tokenizer
    with torch.no_grad():
        img = model.vision_encoder(list(images))
        out = []
        for k, (p, a) in enumerate(zip(prompts, answers, strict=True)):
            q = tok(backend.QUESTION.format(question=p), add_special_tokens=False)["input_ids"]
            ans = tok(f" {a}{tok.eos_token}", add_special_tokens=False)["input_ids"]
            ids = torch.tensor([[tok.bos_token_id, *q, *ans]])
            emb = model.text_model.get_input_embeddings()(ids)
            x = torch.cat([emb[:, :1], img[k : k + 1], emb[:, 1:]], dim=1)
            logits = model.text_model(inputs_embeds=x).logits[0]
            start = 1 + img.shape[1] + len(q)
            out.append(logits[start - 1 : start - 1 + len(ans)].argmax(-1).tolist() == ans)
    return out


def test_text_only_training_learns_the_answers_and_freezes_vision(tokenizer) -> None:
    model = _LegacyMoondream(len(tokenizer))
    backend = MoondreamBackend(model, tokenizer)
    assert isinstance(backend, TrainableVlmBackend)  # everything the fine-tuning loop calls is there
    names = backend.prepare_training("text-only")
    assert names and all(n.startswith("text_model.") for n in names)
    vision_before = {k: v.clone() for k, v in model.vision_encoder.state_dict().items()}
    images = [_image((250, 10, 10)), _image((10, 250, 10)), _image((10, 10, 250))]
    prompts = [PromptTemplate("Read {entity}.").render(e) for e in ("item_weight", "item_weight", "voltage")]
    answers = ["500.0 gram", "2.0 kilogram", "blank"]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = backend.loss(images, prompts, answers)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] / 10
    assert all(_answers(model, backend, images, prompts, answers))
    for k, v in model.vision_encoder.state_dict().items():
        assert torch.equal(v, vision_before[k])


def test_lora_trains_adapters_only_and_merges_on_save(tokenizer, tmp_path: Path) -> None:
    model = _LegacyMoondream(len(tokenizer))
    backend = MoondreamBackend(model, tokenizer)
    names = backend.prepare_training("lora", lora_rank=4, lora_alpha=8)
    assert names and all("lora_" in n for n in names)
    base = model.text_model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    first = None
    for _ in range(10):
        opt.zero_grad()
        loss = backend.loss([_image((5, 5, 5))], ["Read voltage."], ["12.0 volt"])
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    assert float(loss.detach()) < first
    assert torch.equal(model.text_model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight, base)
    backend.save(tmp_path / "out")
    assert isinstance(model.text_model, LlamaForCausalLM)  # merged back into a plain model
    assert (tmp_path / "out" / "standin.pt").is_file() and (tmp_path / "out" / "tokenizer.json").is_file()


def test_finetune_loop_drives_the_moondream_adapter(tokenizer, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for n, (color, value) in enumerate([((240, 0, 0), "500.0 gram"), ((0, 240, 0), "")]):
        _image(color).save(images / f"m{n}.png")
        rows.append([f"https://x.invalid/m{n}.png", "1", "item_weight", value])
    with open(tmp_path / "train.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["image_link", "group_id", "entity_name", "entity_value"], *rows])
    model = _LegacyMoondream(len(tokenizer))
    cfg = FinetuneConfig(
        model="standin-moondream",
        train_csv=str(tmp_path / "train.csv"),
        images_dir=str(images),
        output_dir=str(tmp_path / "out"),
        steps=15,
        batch_size=2,
        lr=1e-2,
        negatives=0.0,
        eval_every=0,
        checkpoint_every=15,
        schedule="constant",
    )
    result = finetune(cfg, backend=MoondreamBackend(model, tokenizer))
    assert result.finished and result.losses[-1] < result.losses[0] / 5
    assert (tmp_path / "out" / "standin.pt").is_file()
    card = json.loads((tmp_path / "out" / "specread_vlm.json").read_text())
    assert card["template"] == PromptTemplate().text
