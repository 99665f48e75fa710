"""timm backbones (``features_only``) with an optional local pretrained checkpoint.

No weights are downloaded at run time: ``pretrained`` is a path to a local file (a timm /
torchvision state dict, or a checkpoint with a ``state_dict`` / ``model`` entry).
"""

from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence, Union

import torch
from mmengine.model import BaseModule

from rle.registry import MODELS

__all__ = ["TimmBackbone"]


@MODELS.register_module()
class TimmBackbone(BaseModule):
    """Any timm model as a feature extractor.

    Args:
        model_name: a timm model name (``resnet50``, ``hrnet_w32``, ``mobilenetv3_large_100``,
            ``test_resnet`` for tests ...).
        out_indices: feature stages to return (default: the last).
        pretrained: local checkpoint path, or ``None``.
        strict: require every backbone key in the checkpoint.
        prefix: key prefix to strip from the checkpoint (e.g. ``"backbone."``); common wrappers
            (``module.``, ``model.``) are stripped automatically.
        kwargs: passed to ``timm.create_model`` (``in_chans``, ``drop_path_rate`` ...).

    ``forward`` returns a tuple of feature maps ``(B, C_i, h_i, w_i)``;
    ``out_channels`` lists ``C_i`` and ``reductions`` the strides.
    """

    def __init__(
        self,
        model_name: str = "resnet50",
        out_indices: Union[int, Sequence[int]] = (-1,),
        pretrained: Optional[str] = None,
        strict: bool = True,
        prefix: str = "",
        init_cfg=None,
        **kwargs,
    ) -> None:
        import timm

        super().__init__(init_cfg=init_cfg)
        if isinstance(out_indices, int):
            out_indices = (out_indices,)
        probe = timm.create_model(model_name, pretrained=False, features_only=True, **kwargs)
        num_stages = len(probe.feature_info)
        for i in out_indices:
            if not -num_stages <= i < num_stages:
                raise ValueError(
                    f"out_indices {tuple(out_indices)} out of range for {model_name} with "
                    f"{num_stages} stages"
                )
        indices = tuple(i % num_stages for i in out_indices)
        self.model = timm.create_model(
            model_name, pretrained=False, features_only=True, out_indices=indices, **kwargs
        )
        self.out_channels = list(self.model.feature_info.channels())
        self.reductions = list(self.model.feature_info.reduction())
        self.model_name = model_name
        if pretrained:
            self.load_pretrained(pretrained, strict=strict, prefix=prefix)

    def load_pretrained(self, path: str, strict: bool = True, prefix: str = "") -> None:
        """Load a local checkpoint into the backbone (features_only key layout handled by
        timm's own filtering: classifier keys are ignored).

        Read with :func:`rle.serialization.load_checkpoint_file`, the loader of every other
        checkpoint: like ``weights_only=True`` it runs no code from the file, but it also
        admits mmengine's and MMPose's checkpoints (numpy objects, HistoryBuffer), so the
        backbone of a training checkpoint loads with ``prefix="backbone."``, and its errors
        name the file (refused globals, truncation)."""
        if not osp.isfile(path):
            raise FileNotFoundError(
                f"pretrained checkpoint not found: {path} (weights are "
                "never downloaded; pass a local file)"
            )
        from rle.serialization import load_checkpoint_file

        ckpt = load_checkpoint_file(path, map_location="cpu")
        for key in ("state_dict", "model"):
            if isinstance(ckpt, dict) and key in ckpt and isinstance(ckpt[key], dict):
                ckpt = ckpt[key]
        state = {}
        for k, v in ckpt.items():
            for p in (prefix, "module.", "model."):
                if p and k.startswith(p):
                    k = k[len(p) :]
            state[k] = v
        own = self.model.state_dict()
        matched = {k: v for k, v in state.items() if k in own}
        missing = [k for k in own if k not in matched]
        if strict and missing:
            raise ValueError(
                f"{path}: {len(missing)} backbone weights missing from the "
                f"checkpoint, e.g. {missing[:3]} (strict=False loads what matches)"
            )
        if not matched:
            raise ValueError(f"{path}: no key matches the {self.model_name} backbone")
        self.model.load_state_dict(matched, strict=False)
        self._is_init = True  # keep the loaded weights when mmengine initialises the model

    def forward(self, x: torch.Tensor):
        return tuple(self.model(x))
