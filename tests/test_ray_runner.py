"""batch/ray_runner.py on a local two-CPU Ray cluster: same output as the local runner, resumable."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

from specread.batch.local import predict_csv  # noqa: E402
from specread.batch.ray_runner import predict_csv_ray  # noqa: E402
from specread.io.dataset import read_predictions  # noqa: E402
from specread.io.output import job_path  # noqa: E402
from specread.settings import ReaderConfig, preset  # noqa: E402
from specread.synth import make_dataset  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ray-data")
    input_csv = make_dataset(root, n_images=8, seed=11, n_values=2)
    with open(input_csv, newline="") as fh:  # one row whose image is missing: predicted empty, counted
        n = sum(1 for _ in fh) - 1
    with open(input_csv, "a", newline="") as fh:
        csv.writer(fh).writerow([n, "https://example.invalid/images/missing.png", "0", "width"])
    return input_csv, root / "images"


def _config() -> ReaderConfig:
    return ReaderConfig(ocr=preset("fast"), cache_dir=None)


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


@pytest.mark.slow
def test_ray_output_equals_local_runner(ray_cluster: None, synth_data: tuple[Path, Path], tmp_path: Path) -> None:
    input_csv, images = synth_data
    local_out, ray_out = tmp_path / "local.csv", tmp_path / "ray.csv"
    ticks: list[tuple[int, int]] = []

    local = predict_csv(input_csv, images, local_out, _config(), workers=1)
    stats = predict_csv_ray(input_csv, images, ray_out, _config(), progress=lambda d, t: ticks.append((d, t)))

    assert _rows(ray_out) == _rows(local_out)
    preds = read_predictions(ray_out)
    assert sum(1 for p in preds.values() if p) >= len(preds) // 2  # a real comparison, not of empty files
    assert (stats.rows, stats.images, stats.failed_images) == (local.rows, local.images, 1) == (len(preds), 9, 1)
    assert ticks and ticks[-1] == (9, 9)


@pytest.mark.slow
def test_ray_resumes_and_keeps_one_row_per_index(
    ray_cluster: None, synth_data: tuple[Path, Path], tmp_path: Path
) -> None:
    input_csv, images = synth_data
    full = tmp_path / "full.csv"
    predict_csv(input_csv, images, full, _config())  # equal to Ray's output (test above)
    rows = _rows(full)
    partial = tmp_path / "partial.csv"
    shutil.copy(job_path(full), job_path(partial))  # the killed run was the same job
    with open(partial, "w", newline="", encoding="utf-8") as fh:  # a killed run: a few rows, a torn last line
        w = csv.writer(fh)
        w.writerow(rows[0])
        w.writerows(rows[3:8])
        fh.write(rows[8][0] + ",12")

    stats = predict_csv_ray(input_csv, images, partial, _config(), actors=1)

    assert stats.skipped_rows == 5 and stats.rows == len(rows) - 1
    assert _rows(partial) == rows


@pytest.mark.slow
def test_train_reads_its_pages_on_ray(ray_cluster: None, synth_data: tuple[Path, Path], tmp_path: Path) -> None:
    from specread.batch.ray_runner import warm_cache_ray
    from specread.batch.train import train_ranker

    input_csv, images = synth_data
    paths = sorted(images.glob("*.png"))
    config = ReaderConfig(ocr=preset("fast"), cache_dir=str(tmp_path / "cache"))
    ticks: list[tuple[int, int]] = []
    warnings = warm_cache_ray([*paths, images / "missing.png"], config, progress=lambda d, t: ticks.append((d, t)))
    assert len(warnings) == 1 and "missing.png" in warnings[0]
    assert ticks[-1] == (len(paths) + 1, len(paths) + 1)
    assert len(list((tmp_path / "cache").rglob("*.json"))) == len(paths)  # one page per readable image

    labels = tmp_path / "labels.csv"  # the generated gold as training labels
    with open(input_csv.parent / "gold.csv", newline="") as src, open(labels, "w", newline="") as dst:
        dst.write(src.read())
    _, n_rows = train_ranker(
        labels, images, tmp_path / "model", ocr=preset("fast"), cache_dir=str(tmp_path / "cache"), runner="ray"
    )
    assert n_rows > 10 and (tmp_path / "model" / "ranker.txt").is_file()
    assert len(list((tmp_path / "cache").rglob("*.json"))) == len(paths)  # the OCR pass found them all cached
