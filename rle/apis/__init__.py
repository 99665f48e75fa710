"""Inference from Python: :func:`init_model` builds a model from a config and/or a checkpoint,
:func:`inference_topdown` predicts the keypoints of the person boxes of one image
(:mod:`rle.apis.inference`, which also describes the pose-model protocol any model must
provide), and :func:`infer_files` runs a model over an image, a folder of images or a video and
writes COCO keypoint results and annotated images (:mod:`rle.apis.run`, what
``tools/infer.py`` calls)."""

from rle.apis.inference import (
    BBOX_FORMATS,
    PoseResult,
    default_dataset_meta,
    inference_topdown,
    init_model,
    model_interval_scale,
    read_image,
)
from rle.apis.run import InferSummary, infer_files

__all__ = [
    "BBOX_FORMATS",
    "InferSummary",
    "PoseResult",
    "default_dataset_meta",
    "infer_files",
    "inference_topdown",
    "init_model",
    "model_interval_scale",
    "read_image",
]
