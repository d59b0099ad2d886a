"""The INT8 models (precision="int8", scripts/quantize_ocr.py): packaged, fingerprinted, reading as float does."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import rapid_engine
from specread.ocr.int8 import INT8_MODELS, int8_model, int8_models_digest
from specread.ocr.rapid import RapidOcrEngine
from specread.readers import build_reader
from specread.settings import ReaderConfig, preset
from specread.synth import make_dataset

INT8_DIR = Path(int8_model("Det")).parent


def test_int8_models_are_packaged_small_and_match_their_manifest() -> None:
    import hashlib

    manifest = json.loads((INT8_DIR / "manifest.json").read_text())
    files = {name for stage in INT8_MODELS.values() for name in (stage, stage.replace(".xml", ".bin"))}

    assert set(manifest["sha256"]) == files
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((INT8_DIR / name).read_bytes()).hexdigest() == digest, name
    assert sum((INT8_DIR / name).stat().st_size for name in files) < 12 * 1024 * 1024
    assert len(manifest["calibration_images"]) == manifest["detector_samples"]


def test_int8_preset_is_fingerprinted_by_its_models() -> None:
    engine = RapidOcrEngine(preset("int8"))

    assert engine.effective_precision() == "int8"
    assert engine.fingerprint().endswith(f"-ov-int8-{int8_models_digest()[:12]}")
    assert engine.fingerprint() != RapidOcrEngine(preset("fast")).fingerprint()


@pytest.mark.parametrize(
    "options",
    [{"precision": "int8"}, {"backend": "openvino", "precision": "int8"}],
    ids=["onnxruntime", "all-charset"],
)
def test_int8_needs_openvino_and_the_latin_charset(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"int8|openvino"):
        rapid_engine(**options)


@pytest.mark.slow
def test_int8_reads_generated_labels_as_float_does(tmp_path: Path) -> None:
    input_csv = make_dataset(tmp_path, n_images=10, seed=13, n_values=2)
    with open(input_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(tmp_path / "gold.csv", newline="") as fh:
        gold = {r["index"]: r["entity_value"] for r in csv.DictReader(fh)}
    readers = {name: build_reader(ReaderConfig(ocr=preset(name), cache_dir=None)) for name in ("fast", "int8")}
    answers: dict[str, dict[str, str]] = {name: {} for name in readers}
    for link in dict.fromkeys(r["image_link"] for r in rows):
        image_rows = [r for r in rows if r["image_link"] == link]
        image = np.asarray(Image.open(tmp_path / "images" / link.rsplit("/", 1)[-1]))
        for name, reader in readers.items():
            result = reader.read(image, [r["entity_name"] for r in image_rows])
            for r in image_rows:
                answers[name][r["index"]] = result.predictions[r["entity_name"]].text

    assert answers["int8"] == answers["fast"]
    correct = sum(answers["int8"][i] == gold[i] for i in gold)
    assert correct >= 0.8 * len(gold)  # the labels are read, not only equally misread
