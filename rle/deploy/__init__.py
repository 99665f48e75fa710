"""Deployment: ONNX export of the crop model, decoding and the flip test inside the graph, and
an onnxruntime runner behind the estimator's inference protocol.

:func:`export_onnx` (:mod:`rle.deploy.onnx_export`) exports what
:meth:`rle.models.TopdownPoseEstimator.predict` computes before it decodes to image pixels: the
input ``inputs`` is the *normalised* crop batch ``(B, 3, H, W)`` float32 (after the data
preprocessor's BGR->RGB and ``(x - mean) / std``); the outputs are ``coords`` ``(B, K, D)`` in
the normalised convention (:mod:`rle.coords`), ``scores`` ``(B, K)`` and, for a head with sigma
(``head.has_sigma``), ``sigma`` ``(B, K, D)``. The graph runs the estimator's own tensor path
(``TopdownPoseEstimator._predict_tensors``: the head's ``predict`` and, when asked, the flip
test), so every head decodes in the graph as it does eagerly: RLE, regression, soft-argmax
(IPR), DSNT, debiased IPR, sampling-argmax (its test-time soft-argmax) and heatmap RLE, 2-D
and the volumetric 3-D modes. The batch axis is dynamic; H and W are fixed.

Exporters: ``torch.onnx.export(dynamo=True)`` (``torch.export``, torch 2.14's default) first;
where it fails, or where its graph disagrees with the eager model on onnxruntime, the
TorchScript exporter (``dynamo=False``, deprecated by torch). Both rely on the decoders'
branch-free export path (:func:`heads.functional._maps.exporting`). The metadata names the
one that wrote a file (``exporter``).

Metadata (``metadata_props`` of the ONNX model, JSON strings): ``model`` (the estimator config
or null), ``input_size`` ``[w, h]``, ``convention``, ``test_cfg`` (its ``flip_test`` is what
the graph does), ``dataset_meta`` (or null), ``data_preprocessor`` (``mean``, ``std``,
``bgr_to_rgb``, ``pad_size_divisor``, ``pad_value``), ``interval_scale`` (``{level: k}`` for
:data:`INTERVAL_LEVELS`, or null), ``head``, ``num_keypoints``, ``num_dims``, ``outputs``,
``flip_indices``, ``dynamic_batch``, ``exporter``, ``format_version``.

:class:`OnnxPoseModel` (:mod:`rle.deploy.onnx_runtime`) runs such a file on onnxruntime behind
the pose-model protocol of :mod:`rle.apis.inference`. onnx, onnxruntime and onnxscript are
optional (``pip install 'rle-pose[deploy]'``), imported only when used.

Shape letters: B batch, K keypoints, D coordinate dims (2 or 3), H/W crop size.
"""

from rle.deploy.onnx_export import (
    EXPORTERS,
    INTERVAL_LEVELS,
    CropPoseModule,
    export_checkpoint,
    export_onnx,
    read_onnx_metadata,
)
from rle.deploy.onnx_runtime import OnnxPoseModel

__all__ = [
    "EXPORTERS",
    "INTERVAL_LEVELS",
    "CropPoseModule",
    "OnnxPoseModel",
    "export_checkpoint",
    "export_onnx",
    "read_onnx_metadata",
]
