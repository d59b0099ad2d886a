"""Getting and looking at data: ``example``, ``download``, ``clean``, ``eda``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from specread.cli.console import console, setup_logging
from specread.cli.options import JsonOpt, SeedOpt

__all__ = ["clean", "download", "eda", "example"]

LabelsArg = Annotated[Path, typer.Argument(help="Labels: image_link,group_id,entity_name,entity_value.")]


def example(
    out_dir: Annotated[Path, typer.Argument(help="Folder to create (images/, input.csv, gold.csv).")] = Path("example"),
    n_images: Annotated[int, typer.Option("--n-images", min=1)] = 12,
    seed: SeedOpt = 0,
) -> None:
    """Generate a small labelled example set of synthetic product labels."""
    from specread.synth import make_dataset

    path = make_dataset(out_dir, n_images=n_images, seed=seed, n_values=2)
    console.print(f"wrote {path} and {out_dir / 'gold.csv'}")


def download(
    input_csv: Annotated[Path, typer.Argument(help="Input CSV whose image_link column to fetch.")],
    images: Annotated[Path, typer.Option("--images", help="Folder to fill (files named by image_link).")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N unique images.")] = None,
    sample: Annotated[int | None, typer.Option("--sample", min=1, help="A seeded random N unique images.")] = None,
    seed: SeedOpt = 0,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Simultaneous requests.")] = 16,
    retries: Annotated[int, typer.Option("--retries", min=0, help="Extra attempts after a transient error.")] = 4,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per request phase.")] = 30.0,
) -> None:
    """Download the unique images of INPUT_CSV (concurrent, retried, resumable; failures listed in the manifest)."""
    setup_logging()
    from specread.io.dataset import read_rows
    from specread.io.download import download_rows

    download_rows(
        read_rows(input_csv),
        images,
        limit=limit,
        sample=sample,
        seed=seed,
        concurrency=concurrency,
        retries=retries,
        timeout=timeout,
        console=console,
    )


def clean(
    train_csv: LabelsArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Cleaned CSV to write (same columns).")],
    images: Annotated[
        Path | None, typer.Option("--images", help="Also drop rows whose image is missing or undecodable.")
    ] = None,
    list_policy: Annotated[
        str, typer.Option("--list-policy", help="Lists and ranges become one value: max, min, first, last or drop.")
    ] = "max",
    as_json: JsonOpt = False,
) -> None:
    """Clean training labels by documented rules and print how many rows each rule changed or dropped."""
    from specread.labels.clean import RULES, clean_csv

    data = clean_csv(train_csv, output, images, list_policy).to_dict()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(title=f"{data['rows_in']} rows in, {data['rows_out']} rows out -> {output}")
    for col in ("rule", "rows", "example"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for rule in RULES:
        ex = data["examples"].get(rule, [])
        table.add_row(rule, str(data["rules"][rule]), f"{ex[0][0]}: {ex[0][1]!r} -> {ex[0][2]!r}" if ex else "")
    table.add_row("kept unchanged", str(data["kept_unchanged"]), "", style="bold")
    Console().print(table)


def eda(
    labels_csv: LabelsArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML report to write (self-contained).")],
    images: Annotated[Path | None, typer.Option("--images", help="Image folder: adds image sizes and checks.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="Report title.")] = None,
) -> None:
    """Write a one-file HTML report on a label CSV (needs the 'eda' extra: matplotlib)."""
    from specread.labels.eda import write_report

    console.print(f"wrote {write_report(labels_csv, output, images, title)}")
