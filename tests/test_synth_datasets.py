"""The synthetic sets through the project's own loaders (generated on first use)."""

import json

import numpy as np
import pytest

from rle.datasets import SynthCocoDataset, SynthH36MDataset, synthetic
from rle.registry import DATASETS

PIPE = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale"),
    dict(type="TopdownAffine", input_size=(48, 64)),
    dict(type="EncodeKeypoints"),
    dict(type="PackPoseInputs"),
]


@pytest.fixture(scope="module")
def synth_coco(tmp_path_factory):
    return str(tmp_path_factory.mktemp("synth") / "coco")


def test_synth_coco_loads_through_the_coco_dataset(synth_coco):
    cfg = dict(num_train_images=6, num_val_images=3, image_size=(128, 96), seed=3)
    train = SynthCocoDataset(synth_coco, "train", synth_cfg=cfg, pipeline=PIPE)
    with open(f"{synth_coco}/annotations/person_keypoints_train.json") as f:
        anns = json.load(f)["annotations"]
    assert len(train) == sum(1 for a in anns if a["num_keypoints"] > 0 and not a["iscrowd"])
    sample = train[0]
    assert tuple(sample["inputs"].shape) == (3, 64, 48)
    w = sample["data_samples"].keypoint_weights
    assert (sample["data_samples"].keypoint_labels[w > 0].abs() <= 0.5).all()
    # same parameters: reused, not regenerated; detections for the val split
    marker = f"{synth_coco}/.complete"
    before = open(marker).read()
    val = SynthCocoDataset(synth_coco, "val", synth_cfg=cfg, test_mode=True, use_detections=True)
    assert open(marker).read() == before and len(val) > 0
    assert train.metainfo["flip_indices"][1] == 2
    with pytest.raises(ValueError, match="split"):
        SynthCocoDataset(synth_coco, "test", synth_cfg=cfg)


def test_synth_h36m_both_layouts_agree(tmp_path):
    cfg = dict(frames_per_subject=2, image_size=(96, 96), seed=1)
    root = str(tmp_path / "h36m")
    npz = SynthH36MDataset(root, "test", "npz", synth_cfg=cfg)
    js = SynthH36MDataset(root, "test", "rle_json", synth_cfg=cfg)
    assert len(npz) == len(js) > 0
    for i in range(len(npz)):
        a, b = npz.get_data_info(i), js.get_data_info(i)
        assert (a["subject"], a["camera_id"]) == (b["subject"], b["camera_id"])
        assert a["subject"] in ("S9", "S11")
        np.testing.assert_allclose(a["keypoints_cam"], b["keypoints_cam"], atol=1e-2)
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-2)
    train = SynthH36MDataset(root, "train", "npz", synth_cfg=cfg)
    assert {train.get_data_info(i)["subject"] for i in range(len(train))} <= {
        "S1",
        "S5",
        "S6",
        "S7",
        "S8",
    }


def test_synthetic_datasets_are_registered_from_the_package():
    for cls in (SynthCocoDataset, SynthH36MDataset):
        assert DATASETS.get(cls.__name__) is cls is getattr(synthetic, cls.__name__)
        assert cls.__module__ == "rle.datasets.synthetic.datasets"
