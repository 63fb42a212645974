"""Rebuild the committed test data in tests/data (run by hand; the tests only read the results).

    python tests/data/make_test_data.py minicoco ../shared/data/minicoco   # the real-photo subset
    python tests/data/make_test_data.py embedded                           # the embedded val annotations

``minicoco``: the images listed in ``MINICOCO_IMAGES`` (Flickr licences that allow redistribution with
attribution, commercial use included: CC BY 2.0, CC BY-SA 2.0; chosen for size and for the cases they
hold: crowd regions, images without persons, 1-16 labelled joints) are copied byte for byte; the
annotation files keep only those images and their annotations and gain COCO's ``licenses`` list.
``embedded``: the validation annotations of the embedded synthetic dataset (seed 0, the default size),
written by the generator itself; rerun it whenever ``GENERATOR_VERSION`` changes (a test says so).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: image ids kept per split of ../shared/data/minicoco.
MINICOCO_IMAGES: dict[str, tuple[int, ...]] = {
    "train": (231857, 444294, 531286, 188388, 34246),
    "val": (422836, 162415, 9483, 209829, 465718, 312720, 366141),
}

#: COCO 2017's licence table (the ids every image entry names).
COCO_LICENSES: list[dict] = [
    {"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, "name": "Attribution-NonCommercial-ShareAlike License"},
    {"url": "http://creativecommons.org/licenses/by-nc/2.0/", "id": 2, "name": "Attribution-NonCommercial License"},
    {"url": "http://creativecommons.org/licenses/by-nc-nd/2.0/", "id": 3, "name": "Attribution-NonCommercial-NoDerivs License"},
    {"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "Attribution License"},
    {"url": "http://creativecommons.org/licenses/by-sa/2.0/", "id": 5, "name": "Attribution-ShareAlike License"},
    {"url": "http://creativecommons.org/licenses/by-nd/2.0/", "id": 6, "name": "Attribution-NoDerivs License"},
    {"url": "http://flickr.com/commons/usage/", "id": 7, "name": "No known copyright restrictions"},
    {"url": "http://www.usa.gov/copyright.shtml", "id": 8, "name": "United States Government Work"},
]


def make_minicoco(source: Path, out: Path = HERE / "minicoco") -> None:
    """Copy the chosen images of ``source`` and write the matching annotation subset to ``out``."""
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split, ids in MINICOCO_IMAGES.items():
        doc = json.loads((source / "annotations" / f"person_keypoints_{split}2017.json").read_text())
        keep = set(ids)
        images = [im for im in doc["images"] if im["id"] in keep]
        if {im["id"] for im in images} != keep:
            raise SystemExit(f"{split}: ids not found in {source}: {sorted(keep - {im['id'] for im in images})}")
        (out / f"{split}2017").mkdir(exist_ok=True)
        for im in images:
            shutil.copyfile(source / f"{split}2017" / im["file_name"], out / f"{split}2017" / im["file_name"])
        subset = {
            "licenses": COCO_LICENSES,
            "images": images,
            "annotations": [a for a in doc["annotations"] if a["image_id"] in keep],
            "categories": doc["categories"],
        }
        (out / "annotations" / f"person_keypoints_{split}2017.json").write_text(json.dumps(subset) + "\n")


def make_embedded_val(out: Path = HERE / "embedded_val" / "person_keypoints_val2017.json") -> None:
    """Generate the embedded dataset's validation split (no train images) and keep its annotation file."""
    from lrpose_bench.data.spec import EMBEDDED_SEED
    from lrpose_bench.data.synth import DEFAULT_VAL_IMAGES, generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = generate_dataset(Path(tmp) / "embedded", 0, DEFAULT_VAL_IMAGES, EMBEDDED_SEED)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / "annotations" / "person_keypoints_val2017.json", out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["minicoco"] and len(sys.argv) == 3:
        make_minicoco(Path(sys.argv[2]))
    elif sys.argv[1:] == ["embedded"]:
        make_embedded_val()
    else:
        raise SystemExit(__doc__)
