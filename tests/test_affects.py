"""specread.affects: every setting says what it affects, and the cache key, the model check and the resume key follow.

A setting tagged ``page`` changes all three; ``kernels`` the cache and the resume key; ``answer``
the resume key only; ``speed`` none: changing only threads, the device or the workers never
invalidates a cache, a model or a resume.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conftest import FakeEngine, TinyDataset, make_reader
from specread.affects import AFFECTS, Affects, fields_affecting, settings_affecting
from specread.batch.local import job_record, predict_csv
from specread.errors import JobMismatchError, ModelMismatchError
from specread.ocr import rapid as engine_module
from specread.ocr.devices import resolve_device
from specread.ocr.rapid import RapidOcrEngine
from specread.rank.model import PAGE_SETTINGS, check_model, load_model
from specread.settings import FetchPolicy, ImageLimits, OcrSettings, ReaderConfig, ServiceSettings, VlmSettings, preset

# Another valid value of each OCR setting, and the preset it is valid from.
OTHER: dict[str, tuple[str, object]] = {
    "engine": ("fast", "other"),
    "det_side": ("fast", 736),
    "max_side": ("fast", 1600),
    "use_cls": ("fast", False),
    "min_score": ("fast", 0.6),
    "rec_batch": ("fast", 8),
    "rec_width_step": ("fast", 32),
    "rec_max_columns": ("fast", 1920),
    "rec_padding": ("fast", "batch"),
    "det_pad": ("fast", 320),
    "charset": ("fast", "all"),
    "backend": ("accurate", "openvino"),
    "precision": ("fast", "int8"),
    "threads": ("fast", 4),
    "kernel_cache": ("fast", 0),
    "batch_images": ("fast", 1),
    "device": ("fast", "same processor"),  # the device "auto" resolves to here: a name of the same processor
}
OCR_FIELDS = [f.name for f in dataclasses.fields(OcrSettings)]


def _variant(name: str) -> tuple[OcrSettings, OcrSettings]:
    base_name, value = OTHER[name]
    base = preset(base_name)
    if name == "device":
        value = resolve_device(base.device)
    return base, dataclasses.replace(base, **{name: value})


def _tag(name: str) -> Affects:
    return next(f.metadata[AFFECTS] for f in dataclasses.fields(OcrSettings) if f.name == name)


def _leaves(settings: object, prefix: str = "") -> set[str]:
    """Every field of a settings tree, by dotted path, sub-trees opened."""
    out = set()
    for f in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            out |= _leaves(value, f"{prefix}{f.name}.")
        else:
            out.add(f"{prefix}{f.name}")
    return out


def _flat(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        out |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
    return out


@pytest.mark.parametrize("root", [ServiceSettings(fetch=FetchPolicy()), ReaderConfig(), ImageLimits()], ids=type)
def test_every_field_of_the_settings_tree_says_what_it_affects_once(root: object) -> None:
    by_kind = {kind: _flat(settings_affecting(root, kind)) for kind in Affects}

    assert set().union(*by_kind.values()) == _leaves(root)  # tagged, or a sub-tree (settings_affecting raises else)
    assert sum(len(paths) for paths in by_kind.values()) == len(_leaves(root))  # each once


def test_a_field_without_a_tag_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Untagged:
        threads: int = 1

    with pytest.raises(TypeError, match=r"Untagged\.threads does not say what it affects"):
        settings_affecting(Untagged(), Affects.SPEED)


def test_every_ocr_setting_is_tried_below_and_a_model_card_keeps_the_page_ones() -> None:
    assert set(OTHER) == set(OCR_FIELDS)
    assert set(load_model().card["ocr"]) == set(PAGE_SETTINGS) == set(fields_affecting(OcrSettings, Affects.PAGE))


@pytest.mark.parametrize("name", OCR_FIELDS)
def test_an_ocr_setting_changes_the_cache_key_exactly_when_it_is_tagged_page_or_kernels(name: str) -> None:
    if name == "engine":
        pytest.skip("the engine's name chooses its class, which names its own models first in its key")
    base, changed = _variant(name)
    keys = [RapidOcrEngine(settings).fingerprint() for settings in (base, changed)]

    assert (keys[0] != keys[1]) == (_tag(name) in (Affects.PAGE, Affects.KERNELS))


@pytest.mark.parametrize("name", OCR_FIELDS)
def test_an_ocr_setting_fails_the_model_check_exactly_when_it_is_tagged_page(name: str) -> None:
    model = load_model()
    base, changed = _variant(name)
    check_model(model, base)
    if _tag(name) is Affects.PAGE:
        with pytest.raises(ModelMismatchError, match=name):
            check_model(model, changed)
    else:
        check_model(model, changed)


@pytest.mark.parametrize("name", OCR_FIELDS)
def test_an_ocr_setting_changes_the_resume_key_exactly_when_it_is_not_tagged_speed(name: str) -> None:
    base, changed = _variant(name)
    records = [job_record([], ReaderConfig(scorer="rules", ocr=settings), False) for settings in (base, changed)]

    assert (records[0] != records[1]) == (_tag(name) is not Affects.SPEED)


@pytest.mark.parametrize(
    ("change", "same"),
    [
        ({"cache_dir": "elsewhere"}, True),
        ({"vlm": VlmSettings(device="cpu")}, True),
        ({"retry_side": 1600}, False),
        ({"scorer": "ranker"}, False),
        ({"vlm": VlmSettings(max_new_tokens=8)}, False),
    ],
)
def test_reader_settings_change_the_resume_key_by_their_tags(change: dict, same: bool) -> None:
    base = ReaderConfig(scorer="rules")

    assert (job_record([], base, False) == job_record([], dataclasses.replace(base, **change), False)) is same


def test_a_gpu_reads_into_one_cache_whether_asked_for_as_auto_or_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "resolve_device", lambda device: "cuda")  # a machine with onnxruntime-gpu
    keys = {RapidOcrEngine(dataclasses.replace(preset("fast"), device=d)).fingerprint() for d in ("auto", "cuda")}

    assert len(keys) == 1 and keys.pop().endswith("-cuda")


def test_changing_only_threads_device_or_workers_keeps_the_cache_the_model_and_the_resume(
    tmp_dataset: TinyDataset, fake_engine: FakeEngine, tmp_path: Path
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out.csv"
    first = ReaderConfig(ocr=dataclasses.replace(preset("fast"), threads=1, device="cpu"), cache_dir=str(cache))
    again = dataclasses.replace(
        first, ocr=dataclasses.replace(first.ocr, threads=4, kernel_cache=0, device=resolve_device("auto"))
    )
    keyed = (Affects.PAGE, Affects.KERNELS, Affects.ANSWER)
    services = [ServiceSettings(reader=config, workers=n) for config, n in ((first, 1), (again, 4))]
    assert settings_affecting(services[0], *keyed) == settings_affecting(services[1], *keyed)
    engines = [RapidOcrEngine(config.ocr) for config in (first, again)]
    assert engines[0].fingerprint() == engines[1].fingerprint()  # the same cache folder
    check_model(load_model(), again.ocr)  # the packaged model serves both
    # predict's worker count is an argument of the run, not a setting: job_record never sees it.

    predict_csv(tmp_dataset.input_csv, tmp_dataset.images, out, first, reader=make_reader(fake_engine))
    complete = out.read_bytes()
    lines = complete.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[: len(lines) // 2]))  # killed halfway
    calls = fake_engine.calls
    stats = predict_csv(tmp_dataset.input_csv, tmp_dataset.images, out, again, reader=make_reader(fake_engine))

    assert stats.skipped_rows == len(lines) // 2 - 1  # resumed: the rows written are kept
    assert 0 < fake_engine.calls - calls < calls  # only the images left were read
    assert out.read_bytes() == complete
    other = dataclasses.replace(first, ocr=dataclasses.replace(first.ocr, rec_batch=8))  # kernels: refused
    with pytest.raises(JobMismatchError, match="reader settings"):
        predict_csv(tmp_dataset.input_csv, tmp_dataset.images, out, other, reader=make_reader(fake_engine))
