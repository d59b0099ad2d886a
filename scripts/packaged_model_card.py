"""Write ``model.json`` for the packaged model folder, around the ranker and priors already there.

The packaged ``ranker.txt`` and ``priors.json`` predate model folders; this records how they were
made without touching their bytes (``specread train`` writes the whole folder, manifest included):

* ranker: ``specread train`` on real-dev with seed 0, pages read with the ``accurate`` preset
  (detector side 960, pictures at most 2000 px);
* priors: ``specread priors train_labels_known.csv --exclude real-dev/labels.csv``, from the
  file as it was then (190,888 label rows counted); the file has grown since;
* metrics: the README's accuracy table (5-fold grouped CV on real-dev, mean of 8 fold splits).

Usage: ``python scripts/packaged_model_card.py [DATA_DIR]`` (default ``../shared/data``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from specread.data import PACKAGED_MODEL
from specread.extract.priors import load_priors
from specread.rank.model import RANKER_FILE, file_sha256, labels_fingerprint, ocr_card, write_manifest
from specread.rank.ranker import CandidateRanker
from specread.settings import preset

README_CV = {  # README, "Accuracy": ranker (default), python benchmarks/real_dev.py --cv 5 --repeats 8
    "f1": 0.813,
    "weighted_f1": 0.775,
    "width": 0.55,
    "height": 0.65,
    "depth": 0.62,
    "item_weight": 0.70,
    "item_volume": 0.61,
    "voltage": 0.62,
    "wattage": 0.76,
    "maximum_weight_recommendation": 0.61,
}


def main(data: Path) -> None:
    folder = Path(str(PACKAGED_MODEL))
    priors = load_priors()
    train_labels = data / "train_labels_known.csv"
    card = {
        "ocr": ocr_card(preset("accurate")),
        "data": {**labels_fingerprint(data / "real-dev" / "labels.csv"), "labels": "real-dev/labels.csv"},
        "params": CandidateRanker.load(folder / RANKER_FILE).get_params(),
        "metrics": {
            "method": "5-fold grouped cross-validation on real-dev (no image or group_id on both sides), "
            "mean of 8 fold splits: python benchmarks/real_dev.py --cv 5 --repeats 8 (README, Accuracy)",
            "rows": 1020,
            "f1": README_CV["f1"],
            "weighted_f1": README_CV["weighted_f1"],
            "per_entity": {k: {"f1": v} for k, v in README_CV.items() if k not in ("f1", "weighted_f1")},
        },
        "priors_from": {
            "labels": train_labels.name,
            "sha256": file_sha256(train_labels),
            "rows": priors.n_rows,
            "exclude": "the image links of real-dev/labels.csv",
            "note": "counted from an earlier, smaller copy of train_labels_known.csv (the README's 195k known "
            "labels); sha256 is of the copy in ../shared/data now, which has grown: rebuilding from it gives "
            "other priors",
        },
    }
    write_manifest(folder, card)
    print(f"wrote {folder / 'model.json'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data")
