"""Where a dataset lives: a COCO-style root, or the embedded synthetic data generated into the cache.

``--data`` takes a COCO root, or ``embedded:VARIANT`` for a variant of the embedded data
(:data:`lrpose_bench.data.synth.VARIANTS`: ``embedded:marked`` is the default, the same as no ``--data``;
``embedded:unmarked`` draws no joint markers). A bare ``embedded`` is the default too, unless a folder of
that name exists (then it is that folder, as before; ``./embedded`` always is).
"""

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
#: ``--data embedded:VARIANT`` selects a generator variant of the embedded data.
EMBEDDED_PREFIX: str = EMBEDDED_NAME + ":"


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


def is_embedded(data: str | Path | None) -> bool:
    """Whether a ``--data`` value selects the embedded data (``None``, ``embedded``, ``embedded:VARIANT``);
    cheap and never raises (an unknown variant is :func:`embedded_variant`'s error)."""
    if data is None:
        return True
    text = str(data)
    return text.startswith(EMBEDDED_PREFIX) or (text == EMBEDDED_NAME and not Path(text).exists())


def embedded_variant(data: str | Path | None) -> str | None:
    """The generator variant a ``--data`` value selects (``None`` and ``embedded``: the default variant), or
    ``None`` for a dataset root. An unknown ``embedded:VARIANT`` is a ``ValueError`` listing the variants."""
    if not is_embedded(data):
        return None
    from lrpose_bench.data.synth import DEFAULT_VARIANT, VARIANTS

    text = "" if data is None else str(data)
    if not text.startswith(EMBEDDED_PREFIX):
        return DEFAULT_VARIANT
    variant = text[len(EMBEDDED_PREFIX):]
    if variant not in VARIANTS:
        raise ValueError(
            f"--data {text!r}: unknown embedded data variant {variant!r}; valid: "
            + ", ".join(EMBEDDED_PREFIX + v for v in VARIANTS)
            + " (or a COCO root folder)"
        )
    return variant


def embedded_name(variant: str | None = None) -> str:
    """Dataset name of an embedded variant in records and reports: ``embedded`` (the default variant),
    ``embedded-unmarked``, ...; ``variant=None`` is the default."""
    from lrpose_bench.data.synth import DEFAULT_VARIANT, check_variant

    variant = check_variant(variant or DEFAULT_VARIANT)
    return EMBEDDED_NAME if variant == DEFAULT_VARIANT else f"{EMBEDDED_NAME}-{variant}"


def embedded_dir(cache_dir: Path | None = None, variant: str | None = None) -> Path:
    """Folder of an embedded dataset inside the cache (``variant=None``: the default variant).

    The name carries everything that decides its content (variant, generator version, split sizes, seed),
    so a cache made by another version or variant of the generator is never mistaken for this one. The
    default's name has no variant in it (``embedded-v2-640x160-s0``, as before the variants existed);
    another variant's has (``embedded-unmarked-v2-640x160-s0``).
    """
    from lrpose_bench.data.synth import DEFAULT_TRAIN_IMAGES, DEFAULT_VAL_IMAGES, GENERATOR_VERSION

    name = f"{embedded_name(variant)}-v{GENERATOR_VERSION}-{DEFAULT_TRAIN_IMAGES}x{DEFAULT_VAL_IMAGES}-s{EMBEDDED_SEED}"
    return (cache_dir or default_cache_dir()) / name


def ensure_embedded(
    target: Path, num_train: int, num_val: int, seed: int, progress: bool = False, variant: str | None = None
) -> Path:
    """Generate the synthetic dataset (``variant``, default: the default variant) into ``target`` once;
    reuse it afterwards.

    Written into a temporary sibling folder and renamed into place, so readers never see a half-written
    dataset; if two processes race, the loser discards its copy and uses the winner's.
    """
    from lrpose_bench.data.synth import DEFAULT_VARIANT, _generate_into, check_variant, install_folder

    variant = check_variant(variant or DEFAULT_VARIANT)
    if (target / "annotations" / "person_keypoints_val2017.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _generate_into(tmp, num_train, num_val, seed, progress, variant=variant)
        install_folder(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_dataset(
    data: str | Path | None, cache_dir: Path | None = None, need_train: bool = False
) -> DatasetSpec:
    """``None`` -> the embedded default (generated on first use); ``embedded:VARIANT`` -> that variant of the
    embedded data (its own cache folder, :func:`embedded_dir`); a path -> a checked COCO root.

    A COCO root holds ``val2017/`` and ``annotations/person_keypoints_val2017.json``, and for training
    ``train2017/`` and ``annotations/person_keypoints_train2017.json``. Missing pieces raise
    ``FileNotFoundError`` naming them; ``need_train`` requires the train split; an unknown variant raises
    ``ValueError``.
    """
    variant = embedded_variant(data)
    if variant is not None:
        from lrpose_bench.data.synth import DEFAULT_TRAIN_IMAGES, DEFAULT_VAL_IMAGES

        root = embedded_dir(cache_dir, variant)
        if not (root / "annotations" / "person_keypoints_val2017.json").is_file():
            from rich.console import Console

            what = "" if embedded_name(variant) == EMBEDDED_NAME else f", {variant} variant,"
            Console(stderr=True).print(
                f"generating the embedded synthetic dataset{what} ({DEFAULT_TRAIN_IMAGES} train + "
                f"{DEFAULT_VAL_IMAGES} val images) into {root} (once)", highlight=False
            )
            ensure_embedded(root, DEFAULT_TRAIN_IMAGES, DEFAULT_VAL_IMAGES, EMBEDDED_SEED, progress=True, variant=variant)
        return _coco_root(root, embedded_name(variant), need_train)
    assert data is not None
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
