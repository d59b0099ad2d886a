"""Fine-tuning a real (tiny, random) transformers VLM end to end, offline.

The model is a LLaVA-architecture network built from a config by
:func:`vlm_tiny.build_tiny_llava` (a test helper) and loaded back through
``AutoProcessor`` / ``AutoModelForImageTextToText``, so these tests run the
same code paths a downloaded checkpoint would: chat template, image tokens,
label masking, generation, checkpoints, saving and ``specread predict``.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the vlm extra is not installed")
pytest.importorskip("transformers", reason="the vlm extra is not installed")
pytest.importorskip("peft", reason="the vlm extra is not installed")

import torch

from conftest import CliInvoke, FakeEngine, TinyDataset
from specread.answer import format_prediction
from specread.io.check import check_output
from specread.synth import SPECS, LabelSpec, render_label
from specread.vlm.backends import HFBackend, TrainableVlmBackend, load_backend
from specread.vlm.data import load_examples
from specread.vlm.finetune import FinetuneConfig, evaluate_examples, finetune, latest_checkpoint
from specread.vlm.prompt import PromptTemplate
from vlm_tiny import build_tiny_llava

SHORT = "Read {entity} ({units})."
"""A short template keeps the overfit test cheap; the model card carries it to predict."""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny") / "llava", vision_hidden_size=64, vision_init=5.0)


def _make_labels(root: Path, n: int = 16) -> tuple[Path, Path, Path]:
    """``n`` generated labels, one question each; every fifth asks an entity the image lacks (gold empty).

    Returns:
        ``(labels_csv, images_dir, input_csv)``: training labels and the same rows in the challenge input format.
    """
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n):
        template, entity, unit, values = SPECS[k % len(SPECS)]
        value = values[k % len(values)]
        spec = LabelSpec((template.format(v=value), "Premium Quality"), {entity: (float(value), unit)})
        render_label(spec, seed=k).save(images / f"label_{k:02d}.png")
        link = f"https://example.invalid/images/label_{k:02d}.png"
        if k % 5 == 4:
            rows.append((link, entity, "voltage" if entity != "voltage" else "item_weight", ""))
        else:
            rows.append((link, entity, entity, format_prediction(value, unit)))
    labels, inputs = root / "labels.csv", root / "input.csv"
    with open(labels, "w", newline="") as fl, open(inputs, "w", newline="") as fi:
        wl, wi = csv.writer(fl), csv.writer(fi)
        wl.writerow(["index", "image_link", "group_id", "entity_name", "entity_value"])
        wi.writerow(["index", "image_link", "group_id", "entity_name"])
        for i, (link, _, asked, gold) in enumerate(rows):
            wl.writerow([i, link, "0", asked, gold])
            wi.writerow([i, link, "0", asked])
    return labels, images, inputs


def _config(model: Path, labels: Path, images: Path, out: Path, template: Path | None = None, **kw) -> FinetuneConfig:
    base = {
        "model": str(model),
        "train_csv": str(labels),
        "images_dir": str(images),
        "output_dir": str(out),
        "negatives": 0.0,
        "eval_every": 0,
        "template": str(template) if template else None,
    }
    return FinetuneConfig(**(base | kw))


def test_training_batch_scores_only_the_answer_and_eos(tiny_model: Path) -> None:
    from PIL import Image

    backend = load_backend(tiny_model)
    assert isinstance(backend, HFBackend) and isinstance(backend, TrainableVlmBackend)
    image = Image.new("RGB", (64, 48), "white")
    prompt = PromptTemplate().render("item_weight")
    batch = backend.training_batch([image, image], [prompt, "Read depth."], ["500.0 gram", "blank"])
    tok = backend.processor.tokenizer
    for row, answer in zip(batch["labels"], ["500.0 gram", "blank"], strict=True):
        scored = row[row != -100].tolist()
        assert tok.decode(scored) == answer + tok.eos_token
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
    image_token = tok.convert_tokens_to_ids("<image>")
    assert (batch["input_ids"] == image_token).sum(1).tolist() == [16, 16]


def test_a_processor_without_chat_template_still_works(tmp_path: Path) -> None:
    from PIL import Image

    backend = load_backend(build_tiny_llava(tmp_path / "plain", chat_template=None))
    assert not backend.processor.chat_template
    assert backend.format_prompt("Read depth.") == "<image>\nRead depth.\n"
    image = Image.new("RGB", (30, 30), "white")
    assert float(backend.loss([image], ["Read depth."], ["4.0 inch"]).detach()) > 0
    out = backend.generate([image, image], ["Read depth.", "Read the width please."], max_new_tokens=4)
    assert len(out) == 2 and all(0.0 <= g.confidence <= 1.0 for g in out)


def test_overfit_sixteen_labels_then_predict_through_the_cli(tiny_model: Path, tmp_path: Path, cli: CliInvoke) -> None:
    labels, images, inputs = _make_labels(tmp_path / "data")
    template = tmp_path / "short.txt"
    template.write_text(SHORT, encoding="utf-8")
    out = tmp_path / "model"
    cfg = _config(
        tiny_model,
        labels,
        images,
        out,
        template,
        steps=150,
        batch_size=16,
        micro_batch=8,
        lr=3e-3,
        schedule="constant",
        warmup=0.0,
        train_projector=True,
        checkpoint_every=150,
    )
    started = time.perf_counter()
    result = finetune(cfg)
    wall = time.perf_counter() - started
    assert result.finished and result.steps_done == 150
    assert sum(result.losses[-5:]) / 5 < result.losses[0] / 20, result.losses[::10]

    backend = load_backend(out)  # reloaded from disk, LLaVA weights + processor + chat template
    examples, _ = load_examples(labels, images)
    report, preds = evaluate_examples(backend, PromptTemplate(SHORT), examples)
    print(f"overfit: {result.steps_done} steps, {wall:.1f} s, exact {report['exact']}/16, loss {result.losses[::25]}")
    assert report["exact"] >= 15, list(zip(preds, [e.value for e in examples], strict=True))

    predictions = tmp_path / "pred.csv"
    run = cli("predict", inputs, "--images", images, "--output", predictions, "--reader", "vlm", "--vlm-model", out)
    assert run.exit_code == 0, run.output
    assert check_output(predictions, inputs).ok
    scored = cli("evaluate", predictions, labels, "--json")
    assert json.loads(scored.output)["f1"] >= 0.9


def test_resume_from_a_checkpoint_matches_an_uninterrupted_run(tiny_model: Path, tmp_path: Path) -> None:
    labels, images, _ = _make_labels(tmp_path / "data", n=6)
    kw = {"steps": 4, "batch_size": 4, "micro_batch": 2, "lr": 1e-3, "checkpoint_every": 2, "negatives": 0.5}
    full = finetune(_config(tiny_model, labels, images, tmp_path / "a", **kw))
    first = finetune(_config(tiny_model, labels, images, tmp_path / "b", stop_at=2, **kw))
    assert not first.finished and latest_checkpoint(tmp_path / "b").name == "step-0000002"
    second = finetune(_config(tiny_model, labels, images, tmp_path / "b", resume=True, **kw))
    assert second.finished and second.steps_done == 4
    assert first.losses + second.losses == full.losses
    a = torch.load(latest_checkpoint(tmp_path / "a") / "trainable.pt")
    b = torch.load(latest_checkpoint(tmp_path / "b") / "trainable.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="no checkpoint"):
        finetune(_config(tiny_model, labels, images, tmp_path / "c", resume=True, **kw))


def test_cli_lora_finetune_validates_and_saves_a_plain_model(tiny_model: Path, tmp_path: Path, cli: CliInvoke) -> None:
    labels, images, _ = _make_labels(tmp_path / "data", n=8)
    out = tmp_path / "lora"
    args = ["--model", tiny_model, "--train", labels, "--images", images, "--output", out, "--steps", "4"]
    args += ["--batch-size", "4", "--lora", "--lora-rank", "4", "--lr", "1e-2", "--val-fraction", "0.25"]
    run = cli("finetune", *args, "--eval-every", "2", "--checkpoint-every", "2")
    assert run.exit_code == 0, run.output
    assert "validation F1" in run.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert "val" in records[1] and "val" in records[3] and 0.0 <= records[3]["val"]["f1"] <= 1.0
    assert records[-1]["loss"] < records[0]["loss"]
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llava" and not (out / "adapter_config.json").exists()
    backend = load_backend(out)  # LoRA merged: loads as a plain model
    assert not any("lora" in name for name, _ in backend.model.named_parameters())
    gone = cli("finetune", *args, "--text-only")  # it named the default and changed nothing: removed
    assert gone.exit_code == 2 and "No such option: --text-only" in " ".join(gone.output.split())


def test_cli_hybrid_reader_runs_ocr_then_the_vlm(
    tiny_model: Path, tmp_dataset: TinyDataset, fake_rapidocr: FakeEngine, cli: CliInvoke, tmp_path: Path
) -> None:
    out = tmp_path / "hybrid.csv"
    args = ["--images", tmp_dataset.images, "--output", out, "--no-cache", "--scorer", "rules"]
    vlm = ["--reader", "hybrid", "--vlm-model", tiny_model, "--vlm-threshold", "1.01"]  # above 1: all to the VLM
    run = cli("predict", tmp_dataset.input_csv, *args, *vlm)
    assert run.exit_code == 0, run.output
    assert check_output(out, tmp_dataset.input_csv).ok  # an untrained VLM's text never yields an invalid row
    assert fake_rapidocr.calls == len({name for _, name, _, _ in tmp_dataset.rows})
    missing = cli("predict", tmp_dataset.input_csv, *args, "--reader", "hybrid")
    assert missing.exit_code == 2 and "--vlm-model" in missing.output
