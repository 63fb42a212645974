"""Where a dataset lives: a COCO-style root, or the embedded synthetic default generated into the cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: The embedded default: its seed and the cache folder it is generated into.
EMBEDDED_SEED: int = 0
EMBEDDED_NAME: str = "embedded"


@dataclass(frozen=True)
class DatasetSpec:
    """A COCO keypoint dataset on disk. The train fields are ``None`` for a root with only a val split."""

    name: str
    root: Path
    train_ann: Path | None
    train_images: Path | None
    val_ann: Path
    val_images: Path

    @property
    def has_train(self) -> bool:
        """Whether the dataset has a training split."""
        return self.train_ann is not None

    def content_hash(self) -> str:
        """First 16 hex digits of SHA-256 over the annotation files' bytes (train, then val)."""
        h = hashlib.sha256()
        for path in (self.train_ann, self.val_ann):
            if path is not None:
                with open(path, "rb") as f:
                    while block := f.read(1 << 20):
                        h.update(block)
        return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$LRPOSE_CACHE`` if set, else ``~/.cache/lrpose-bench``."""
    env = os.environ.get("LRPOSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lrpose-bench"


def embedded_dir(cache_dir: Path | None = None) -> Path:
    """Folder of the embedded default dataset inside the cache.

    The name carries everything that decides its content (generator version, split sizes, seed), so a
    cache made by another version of the generator is never mistaken for the current one.
    """
    from lrpose_bench.data.synth import DEFAULT_TRAIN_IMAGES, DEFAULT_VAL_IMAGES, GENERATOR_VERSION

    name = f"embedded-v{GENERATOR_VERSION}-{DEFAULT_TRAIN_IMAGES}x{DEFAULT_VAL_IMAGES}-s{EMBEDDED_SEED}"
    return (cache_dir or default_cache_dir()) / name


def ensure_embedded(
    target: Path, num_train: int, num_val: int, seed: int, progress: bool = False
) -> Path:
    """Generate the synthetic dataset into ``target`` once; reuse it afterwards.

    Written into a temporary sibling folder and renamed into place, so readers never see a half-written
    dataset; if two processes race, the loser discards its copy and uses the winner's.
    """
    from lrpose_bench.data.synth import _generate_into, install_folder

    if (target / "annotations" / "person_keypoints_val2017.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _generate_into(tmp, num_train, num_val, seed, progress)
        install_folder(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_dataset(data: Path | None, cache_dir: Path | None = None, need_train: bool = False) -> DatasetSpec:
    """``None`` -> the embedded default (generated on first use); a path -> a checked COCO root.

    A COCO root holds ``val2017/`` and ``annotations/person_keypoints_val2017.json``, and for training
    ``train2017/`` and ``annotations/person_keypoints_train2017.json``. Missing pieces raise
    ``FileNotFoundError`` naming them; ``need_train`` requires the train split.
    """
    if data is None:
        from lrpose_bench.data.synth import DEFAULT_TRAIN_IMAGES, DEFAULT_VAL_IMAGES

        root = embedded_dir(cache_dir)
        if not (root / "annotations" / "person_keypoints_val2017.json").is_file():
            from rich.console import Console

            Console(stderr=True).print(
                f"generating the embedded synthetic dataset ({DEFAULT_TRAIN_IMAGES} train + "
                f"{DEFAULT_VAL_IMAGES} val images) into {root} (once)", highlight=False
            )
            ensure_embedded(root, DEFAULT_TRAIN_IMAGES, DEFAULT_VAL_IMAGES, EMBEDDED_SEED, progress=True)
        return _coco_root(root, EMBEDDED_NAME, need_train)
    root = Path(data).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset root not found: {root}")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root is not a folder: {root}")
    return _coco_root(root, root.resolve().name, need_train)


def _coco_root(root: Path, name: str, need_train: bool) -> DatasetSpec:
    ann = root / "annotations"
    val_ann, val_images = ann / "person_keypoints_val2017.json", root / "val2017"
    train_ann, train_images = ann / "person_keypoints_train2017.json", root / "train2017"
    missing = [str(p) for p in (val_ann, val_images) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"dataset root {root} is missing {', '.join(missing)} (expected a COCO layout)")
    has_train = train_ann.is_file()
    if has_train and not train_images.is_dir():
        raise FileNotFoundError(f"dataset root {root} has {train_ann.name} but no image folder {train_images}")
    if need_train and not has_train:
        raise FileNotFoundError(
            f"dataset root {root} has no train split: missing {train_ann} (training needs one; evaluation does not)"
        )
    return DatasetSpec(
        name=name,
        root=root,
        train_ann=train_ann if has_train else None,
        train_images=train_images if has_train else None,
        val_ann=val_ann,
        val_images=val_images,
    )
