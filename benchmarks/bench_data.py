"""Training-pipeline throughput on one core against the bare floor of ``cv2.imread`` +
``cv2.warpAffine`` of the same files, and synthetic-data generation speed.

Pipeline: dataset record -> load JPEG -> box -> random flip -> affine crop 256x192 ->
normalise -> encode targets -> pack tensors. Images: the real COCO sample when
``../shared/data`` is present, else generated JPEGs of the same size (640x425).

    python benchmarks/bench_data.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from rle.datasets import CocoKeypointDataset

from common import table

ROOT = Path(__file__).resolve().parents[1]

PIPELINE = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale"),
    dict(type="RandomFlip", prob=0.5),
    dict(type="TopdownAffine", input_size=(192, 256)),
    dict(type="NormalizeImage"),
    dict(type="EncodeKeypoints"),
    dict(type="PackPoseInputs"),
]


def _coco_like_folder(tmp: Path) -> Path:
    """A COCO-format folder with 8 random 640x425 JPEGs, 3 people each."""
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(8):
        img = cv2.GaussianBlur(rng.integers(0, 255, (425, 640, 3), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(tmp / f"{i}.jpg"), img)
        images.append(dict(id=i, file_name=f"{i}.jpg", width=640, height=425))
        for _ in range(3):
            kpts = np.c_[rng.uniform(100, 500, (17, 2)), np.full(17, 2)].ravel().tolist()
            anns.append(
                dict(
                    id=len(anns),
                    image_id=i,
                    category_id=1,
                    bbox=[80, 60, 300, 340],
                    keypoints=kpts,
                    num_keypoints=17,
                    iscrowd=0,
                    area=1.0,
                )
            )
    from rle.datasets.coco import COCO_KEYPOINT_NAMES

    cat = dict(id=1, name="person", keypoints=list(COCO_KEYPOINT_NAMES), skeleton=[])
    (tmp / "ann.json").write_text(
        json.dumps(dict(images=images, annotations=anns, categories=[cat]))
    )
    return tmp / "ann.json"


def _dataset(tmp: Path) -> CocoKeypointDataset:
    sample = ROOT.parent / "shared" / "data" / "coco_sample"
    if sample.is_dir():
        return CocoKeypointDataset(
            ann_file="test_coco.json", data_root=str(sample), pipeline=PIPELINE
        )
    ann = _coco_like_folder(tmp)
    return CocoKeypointDataset(ann_file=str(ann), data_prefix=dict(img=str(tmp)), pipeline=PIPELINE)


def throughput(fn, n: int, rounds: int) -> float:
    """Median samples/s over ``rounds`` rounds of ``n`` calls."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_pipeline(rounds: int):
    with tempfile.TemporaryDirectory() as tmp:
        ds = _dataset(Path(tmp))
        infos = [ds.get_data_info(i) for i in range(len(ds))]
        mats = [cv2.getRotationMatrix2D((200.0, 200.0), 0.0, 0.6) for _ in infos]

        def floor(i):
            j = i % len(infos)
            img = cv2.imread(infos[j]["img_path"], cv2.IMREAD_COLOR)
            cv2.warpAffine(img, mats[j], (192, 256), flags=cv2.INTER_LINEAR)

        def ours(i):
            ds[i % len(ds)]

        n = 4 * len(ds)
        for fn in (floor, ours):  # warm up the file cache and the code paths
            throughput(fn, n, 1)
        rates = {"floor: cv2.imread + cv2.warpAffine": 0.0, "rle-pose training pipeline": 0.0}
        f, o = [], []
        for _ in range(rounds):  # interleaved rounds
            f.append(throughput(floor, n, 1))
            o.append(throughput(ours, n, 1))
        rates["floor: cv2.imread + cv2.warpAffine"] = statistics.median(f)
        rates["rle-pose training pipeline"] = statistics.median(o)
    floor_rate = rates["floor: cv2.imread + cv2.warpAffine"]
    return [[name, f"{r:.0f}", f"{r / floor_rate:.2f}"] for name, r in rates.items()]


def bench_generation():
    try:
        from rle.datasets.synthetic import generate_synth_coco
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_synth_coco(tmp, num_train_images=199, num_val_images=1, seed=0, progress=False)
        return 200 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print("one core (torch and cv2 single-threaded)\n")
    print(table(bench_pipeline(args.rounds), ["path", "samples/s", "fraction of floor"]))
    rate = bench_generation()
    if rate is not None:
        print(f"\nSynthCOCO generation: {rate:.1f} images/s (200 train images, one core)")


if __name__ == "__main__":
    main()
