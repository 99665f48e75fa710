"""Models: timm backbones and the top-down estimator (registered in the ``rle`` scope)."""

from rle.models.backbones import TimmBackbone
from rle.models.topdown import TopdownPoseEstimator

__all__ = ["TimmBackbone", "TopdownPoseEstimator"]
