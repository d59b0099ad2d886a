"""A one-file HTML report on a label CSV: what the data holds and what ``clean`` would change.

Sections: totals; entity mix (against the official test mix); units per
entity; value distributions on a log scale (each dimension in one display
unit, converted by the unit registry); ``group_id`` coverage; image sizes and
formats (with ``images_dir``); and the anomalies :mod:`specread.labels.clean`
acts on, with examples. Plots are matplotlib (Agg backend) PNGs embedded as
base64, so the report is one self-contained file that opens anywhere.
matplotlib is the optional ``eda`` extra and is imported only here.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from specread.answer import Answer
from specread.io.dataset import LABEL_COLUMNS, CsvTable, image_name
from specread.labels.clean import RULES, clean_rows, clean_value
from specread.metrics import TEST_MIX
from specread.units.registry import ENTITIES, get_registry

__all__ = ["DISPLAY_UNITS", "build_report", "write_report"]

DISPLAY_UNITS = {"length": "centimetre", "mass": "gram", "volume": "millilitre", "voltage": "volt", "power": "watt"}
"""One unit per dimension so values of one entity are comparable on one axis."""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _read_rows(path: Path) -> list[dict[str, str]]:
    with CsvTable(path, LABEL_COLUMNS) as table:
        return [record for _, record in table]


def _entity_section(rows: list[dict[str, str]]) -> str:
    import matplotlib.pyplot as plt

    counts = Counter(r["entity_name"] for r in rows)
    names = [e for e in ENTITIES if counts.get(e)] + sorted(set(counts) - set(ENTITIES))
    total = sum(counts.values()) or 1
    test_total = sum(TEST_MIX.values())
    fig, ax = plt.subplots(figsize=(8, 3.5))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [counts[n] / total for n in names], width=0.4, label="this file")
    ax.bar([x + 0.2 for x in xs], [TEST_MIX.get(n, 0) / test_total for n in names], width=0.4, label="official test")
    ax.set_xticks(list(xs), names, rotation=30, ha="right")
    ax.set_ylabel("share of rows")
    ax.legend()
    ax.set_title("Entity mix")
    table = _table(
        ["entity", "rows", "share", "official test share"],
        [(n, counts[n], f"{counts[n] / total:.1%}", f"{TEST_MIX.get(n, 0) / test_total:.1%}") for n in names],
    )
    return f"<h2>Entity mix</h2>{_png(fig)}{table}"


def _unit_of(value: str) -> str:
    text = " ".join(value.split())
    if text.startswith("["):
        return text.rsplit("]", 1)[-1].strip() + " (list)"
    if " to " in text:
        return text.split(" to ")[-1].lstrip("0123456789.- ").strip() + " (range)"
    return text.partition(" ")[2] or "(none)"


def _units_section(rows: list[dict[str, str]]) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    registry = get_registry()
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        per[r["entity_name"]][_unit_of(r["entity_value"])] += 1
    entities = [e for e in ENTITIES if e in per]
    fig, axes = plt.subplots(2, 4, figsize=(14, 6))
    for ax, entity in zip(axes.flat, entities, strict=False):
        top = per[entity].most_common(8)
        allowed = set(registry.allowed(entity))
        colors = ["tab:blue" if u in allowed else "tab:red" for u, _ in top]
        ax.barh([u for u, _ in top][::-1], [c for _, c in top][::-1], color=colors[::-1])
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(entity, fontsize=10)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(entities) :]:
        ax.axis("off")
    fig.suptitle("Units per entity (log count; red = not allowed for the entity, list or range)")
    fig.tight_layout()
    table_rows = []
    for entity in entities:
        allowed = set(registry.allowed(entity))
        for unit, n in per[entity].most_common():
            table_rows.append((entity, unit, n, "yes" if unit in allowed else "no"))
    table = _table(["entity", "unit", "rows", "allowed"], table_rows)
    return f"<h2>Units per entity</h2>{_png(fig)}<details><summary>all units</summary>{table}</details>"


def _values_section(rows: list[dict[str, str]]) -> str:
    import matplotlib.pyplot as plt

    registry = get_registry()
    values: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        entity = r["entity_name"]
        if entity not in registry.entities:
            continue
        cleaned, _ = clean_value(entity, r["entity_value"])
        answer = Answer.parse(cleaned)  # None for a dropped or blanked label
        if answer is None:
            continue
        dim = registry.entity(entity).dimension
        values[entity].append(registry.convert(answer.value, answer.unit, DISPLAY_UNITS[dim]))
    entities = [e for e in ENTITIES if values.get(e)]
    fig, axes = plt.subplots(2, 4, figsize=(14, 6))
    stats = []
    for ax, entity in zip(axes.flat, entities, strict=False):
        logs = [math.log10(v) for v in values[entity] if v > 0]
        ax.hist(logs, bins=50, color="tab:green")
        unit = DISPLAY_UNITS[registry.entity(entity).dimension]
        ax.set_title(f"{entity} (log10 {unit})", fontsize=10)
        ax.tick_params(labelsize=8)
        ordered = sorted(values[entity])
        qs = [f"{ordered[min(len(ordered) - 1, int(p * len(ordered)))]:.4g}" for p in (0.01, 0.5, 0.99)]
        stats.append((entity, unit, len(ordered), *qs, f"{ordered[-1]:.4g}"))
    for ax in list(axes.flat)[len(entities) :]:
        ax.axis("off")
    fig.suptitle("Value distributions after cleaning, log10 scale")
    fig.tight_layout()
    table = _table(["entity", "unit", "values", "p1", "median", "p99", "max"], stats)
    return f"<h2>Value distributions</h2>{_png(fig)}{table}"


def _groups_section(rows: list[dict[str, str]]) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    per_group: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        per_group[(r.get("group_id") or "").strip() or "(none)"][r["entity_name"]] += 1
    sizes = Counter({g: sum(c.values()) for g, c in per_group.items()})
    top = [g for g, _ in sizes.most_common(25)]
    entities = [e for e in ENTITIES if any(per_group[g].get(e) for g in per_group)]
    matrix = np.array([[per_group[g].get(e, 0) / sizes[g] for e in entities] for g in top])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [1, 1.3]})
    ranked = sorted(sizes.values(), reverse=True)
    covered = np.cumsum(ranked) / max(1, sum(ranked))
    a1.plot(range(1, len(ranked) + 1), covered)
    a1.set_xscale("log")
    a1.set_xlabel("groups (largest first)")
    a1.set_ylabel("share of rows covered")
    a1.set_title(f"{len(ranked)} group_ids: cumulative coverage")
    im = a2.imshow(matrix, aspect="auto", cmap="viridis")
    a2.set_yticks(range(len(top)), [f"{g} ({sizes[g]})" for g in top], fontsize=7)
    a2.set_xticks(range(len(entities)), entities, rotation=30, ha="right", fontsize=8)
    a2.set_title("Entity share within the 25 largest groups")
    fig.colorbar(im, ax=a2)
    fig.tight_layout()
    single = sum(1 for c in per_group.values() if len(c) == 1)
    table = _table(
        ["group_ids", "rows in the 10 largest", "groups with one entity only", "median rows per group"],
        [(len(per_group), f"{covered[min(9, len(covered) - 1)]:.1%}", single, int(np.median(ranked)))],
    )
    return f"<h2>group_id coverage</h2>{_png(fig)}{table}"


def _images_section(rows: list[dict[str, str]], images_dir: Path) -> str:
    import matplotlib.pyplot as plt
    from PIL import Image, UnidentifiedImageError

    sizes: list[tuple[int, int]] = []
    formats: Counter[str] = Counter()
    bytes_: list[int] = []
    missing = broken = 0
    for link in sorted({r["image_link"].strip() for r in rows}):
        path = images_dir / image_name(link)
        if not path.is_file():
            missing += 1
            continue
        try:
            with Image.open(path) as img:
                sizes.append(img.size)
                formats[img.format or "?"] += 1
            bytes_.append(path.stat().st_size)
        except (UnidentifiedImageError, OSError):
            broken += 1
    if not sizes:
        return f"<h2>Images</h2><p>No readable image under {html.escape(str(images_dir))} ({missing} missing).</p>"
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    a1.scatter([w for w, _ in sizes], [h for _, h in sizes], s=6, alpha=0.4)
    a1.set_xlabel("width (px)")
    a1.set_ylabel("height (px)")
    a1.set_title(f"Image sizes ({len(sizes)} images)")
    a2.hist([b / 1024 for b in bytes_], bins=40, color="tab:orange")
    a2.set_xlabel("file size (KiB)")
    a2.set_title("File sizes")
    fig.tight_layout()
    widths = sorted(w for w, _ in sizes)
    heights = sorted(h for _, h in sizes)
    table = _table(
        ["images", "missing", "unreadable header", "formats", "median width", "median height"],
        [
            (
                len(sizes),
                missing,
                broken,
                ", ".join(f"{k} {v}" for k, v in formats.most_common()),
                widths[len(widths) // 2],
                heights[len(heights) // 2],
            )
        ],
    )
    return f"<h2>Images</h2>{_png(fig)}{table}"


def _anomalies_section(rows: list[dict[str, str]], images_dir: Path | None) -> tuple[str, dict]:
    import matplotlib.pyplot as plt

    _, report = clean_rows([dict(r) for r in rows], images_dir)
    counts = [(rule, report.counts.get(rule, 0)) for rule in RULES]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.barh([r for r, _ in counts][::-1], [max(c, 0.5) for _, c in counts][::-1], color="tab:red")
    ax.set_xscale("log")
    ax.set_title(f"Rows `specread clean` changes or drops, per rule (of {report.rows_in})")
    examples = [(rule, *ex) for rule in RULES for ex in report.examples.get(rule, [])]
    body = (
        f"<h2>Anomalies that <code>specread clean</code> acts on</h2>{_png(fig)}"
        + _table(["rule", "rows"], [*counts, ("kept unchanged", report.counts.get("kept", 0))])
        + "<h3>Examples</h3>"
        + _table(["rule", "entity", "label", "after cleaning"], examples)
    )
    return body, report.to_dict()


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3} img{max-width:100%} h2{border-bottom:2px solid #ddd;padding-top:1em}
"""


def build_report(labels_csv: str | Path, images_dir: str | Path | None = None, title: str | None = None) -> str:
    """The HTML report for a label CSV (``image_link,group_id,entity_name,entity_value``).

    Raises:
        InputFormatError: the CSV has no ``image_link``/``entity_name``/``entity_value`` columns
            or is not a UTF-8 CSV (a ``ValueError`` too).
    """
    import matplotlib

    matplotlib.use("Agg")
    path = Path(labels_csv)
    rows = _read_rows(path)
    images = Path(images_dir) if images_dir else None
    per_image = Counter(r["image_link"] for r in rows)
    summary = _table(
        ["rows", "images", "group_ids", "entities", "rows per image (mean)", "images with >1 row"],
        [
            (
                len(rows),
                len(per_image),
                len({r.get("group_id", "") for r in rows}),
                len({r["entity_name"] for r in rows}),
                f"{len(rows) / max(1, len(per_image)):.2f}",
                sum(1 for c in per_image.values() if c > 1),
            )
        ],
    )
    anomalies, _ = _anomalies_section(rows, images)
    sections = [
        summary,
        _entity_section(rows),
        _units_section(rows),
        _values_section(rows),
        _groups_section(rows),
        _images_section(rows, images) if images else "<h2>Images</h2><p>Not inspected (no --images).</p>",
        anomalies,
    ]
    name = html.escape(title or f"specread EDA: {path.name}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{name}</title><style>{_CSS}</style></head>"
        f"<body><h1>{name}</h1>" + "\n".join(sections) + "</body></html>"
    )


def write_report(
    labels_csv: str | Path, output: str | Path, images_dir: str | Path | None = None, title: str | None = None
) -> Path:
    """Build the report and write it to ``output`` (folders created)."""
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(labels_csv, images_dir, title), encoding="utf-8")
    return out
