"""Estimator and backbone: flip test is exact in the normalised convention, local pretrained
weights load (never downloaded), out_indices, decode back to image pixels."""

import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement

from heads.base import BaseHead, HeadOutput
from heads.functional import heatmap_confidence, soft_argmax, spatial_softmax
from rle.models import TimmBackbone, TopdownPoseEstimator


class _Identity(torch.nn.Module):
    out_channels = [3]

    def forward(self, x):
        return (x,)


class _SoftArgmaxOnInput(BaseHead):
    """Each input channel is one keypoint's logits: exactly flip-equivariant."""

    def forward(self, feats):
        x = self._feature_map(feats)
        return HeadOutput(coords=soft_argmax(x), heatmaps=spatial_softmax(x), logits=x)

    def scores(self, output):
        return heatmap_confidence(output.heatmaps)


def _sample(w=8, h=6):
    s = BaseDataElement(
        metainfo=dict(
            input_size=(w, h),
            input_center=np.array([50.0, 40.0]),
            input_scale=np.array([80.0, 60.0]),
            flip_indices=[0, 1, 2],
        )
    )
    return s


def test_flip_test_is_exact_for_an_equivariant_head():
    model = TopdownPoseEstimator(
        _Identity(), _SoftArgmaxOnInput(3, 3), test_cfg=dict(flip_test=True)
    )
    x = torch.randn(1, 3, 6, 8)
    plain = TopdownPoseEstimator(_Identity(), model.head)
    a = model.predict(x, [_sample()])[0]
    b = plain.predict(x, [_sample()])[0]
    # the stub's keypoint k is read from channel k (no left/right pairs): mirroring the input,
    # negating x and averaging must give back exactly the plain prediction, i.e. the flip has
    # no half-pixel shift anywhere (the official code needs x' = -x - 1/W)
    np.testing.assert_allclose(a.pred_coords, b.pred_coords, atol=1e-6)
    np.testing.assert_allclose(a.pred_keypoints, b.pred_keypoints, atol=1e-4)


def test_decode_maps_crop_centre_to_box_centre():
    model = TopdownPoseEstimator(_Identity(), _SoftArgmaxOnInput(3, 3))
    x = torch.zeros(1, 3, 6, 8)  # uniform maps: soft-argmax at the crop centre
    out = model.predict(x, [_sample()])[0]
    np.testing.assert_allclose(out.pred_keypoints, [[50.0, 40.0]] * 3, atol=1e-4)


def test_timm_backbone_out_indices_and_local_checkpoint(tmp_path):
    bb = TimmBackbone("test_resnet", out_indices=(1, -1))
    feats = bb(torch.randn(1, 3, 64, 64))
    assert len(feats) == 2 and bb.out_channels == [feats[0].shape[1], feats[1].shape[1]]
    with pytest.raises(ValueError, match="out_indices"):
        TimmBackbone("test_resnet", out_indices=(7,))
    # a checkpoint as training scripts save it: nested state_dict, DDP 'module.' prefix
    state = {"module." + k: v + 1 for k, v in bb.model.state_dict().items()}
    path = tmp_path / "backbone.pth"
    torch.save({"state_dict": state}, path)
    loaded = TimmBackbone("test_resnet", out_indices=(1, -1), pretrained=str(path))
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, bb.model.state_dict()[key] + 1), key
    loaded.init_weights()  # mmengine's init keeps the loaded weights
    key = next(iter(state))[len("module.") :]
    assert torch.equal(loaded.model.state_dict()[key], state["module." + key])
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        TimmBackbone("test_resnet", pretrained=str(tmp_path / "missing.pth"))
    torch.save({"other.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="missing from the checkpoint"):
        TimmBackbone("test_resnet", pretrained=str(path))


def test_estimator_errors():
    model = TopdownPoseEstimator(_Identity(), _SoftArgmaxOnInput(3, 3))
    with pytest.raises(ValueError, match="mode"):
        model(torch.zeros(1, 3, 6, 8), [], mode="train")
    with pytest.raises(KeyError, match="keypoint_labels"):
        model(torch.zeros(1, 3, 6, 8), [_sample()], mode="loss")
