"""The throughput-by-preset plot of `python -m benchmarks.throughput --plot FILE.png` (the eda extra)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_runs"]


def plot_runs(runs: list[dict], machine: str, path: Path) -> None:
    """Throughput by preset: images/s against test-weighted F1, one point per run (the ``eda`` extra's matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in runs:
        ax.scatter(r["images_per_s"], r["weighted_f1"], s=60)
        ax.annotate(
            f"{r['preset']} ({r['engine']})",
            (r["images_per_s"], r["weighted_f1"]),
            xytext=(6, 4),
            textcoords="offset points",
            fontsize=9,
        )
    workers = runs[0]["workers"]
    ax.set(
        xlabel=f"images/s ({workers} workers, cold cache, process start included)",
        ylabel="test-weighted F1",
        title=f"Throughput by preset: {runs[0]['images']} real-dev images, {machine}",
    )
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.set_xlim(left=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
