"""Mixed-precision training on every device: an mmengine optimizer wrapper of our own.

mmengine's ``AmpOptimWrapper`` asserts a GPU (NPU, MLU) and always scales the loss. This one
runs the model's forward and loss under ``torch.autocast`` of the device the model is on:

* ``dtype="bfloat16"`` (the CPU default): no loss scaling (bfloat16 has float32's exponent
  range, so gradients do not underflow); on a CPU with AVX512-BF16 or AMX the convolutions
  and matrix products run in bfloat16.
* ``dtype="float16"`` (the CUDA default): dynamic loss scaling with ``torch.amp.GradScaler``,
  as ``AmpOptimWrapper`` does.

The RLE loss and the decoders keep float32 maths inside autocast (``rle.losses`` disables
autocast around the flow; the decoders upcast half-precision maps), so only the backbone and
the heads' convolutions and linear layers run in low precision.

``rle.engine.load_config(..., amp=True)`` (``tools/train.py --amp``) selects it.
"""

from __future__ import annotations

import contextlib
from contextlib import contextmanager
from typing import Optional, Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from rle.registry import OPTIM_WRAPPERS

__all__ = [
    "AMP_DTYPES",
    "MixedPrecisionOptimWrapper",
    "default_amp_dtype",
    "full_precision",
    "upcast",
]

#: the autocast dtypes the wrapper accepts
AMP_DTYPES = ("bfloat16", "float16")


def full_precision(tensor: torch.Tensor):
    """A context in which autocast is off on ``tensor``'s device, where it is on (a
    ``nullcontext`` otherwise, so eager float32 and export are untouched).

    The heads run their output layers, decoders and losses in it on ``.float()`` inputs:
    under ``--amp`` the backbone and the heatmap trunks run in bfloat16/float16, but an
    8-bit mantissa puts a coordinate only to ~1/256 of the crop, and a softmax or an
    expectation over hundreds of bins loses more; the layers after the trunk cost little.
    """
    device_type = tensor.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 if it is float16/bfloat16 (autocast's outputs), else unchanged
    (float32 and float64 inputs keep their precision)."""
    if tensor.dtype in (torch.float16, torch.bfloat16):
        return tensor.float()
    return tensor


def default_amp_dtype(device_type: str) -> str:
    """``"float16"`` on CUDA (tensor cores, loss scaling), ``"bfloat16"`` elsewhere."""
    return "float16" if device_type == "cuda" else "bfloat16"


@OPTIM_WRAPPERS.register_module()
class MixedPrecisionOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose ``optim_context`` autocasts on the model's device.

    Args:
        dtype: ``"bfloat16"``, ``"float16"`` or ``None`` (:func:`default_amp_dtype` of the
            model's device, decided on the first ``optim_context``); ``"float32"`` turns
            autocast off (plain ``OptimWrapper`` training), so that a config which trains in
            bfloat16 runs in float32 with ``--cfg-options optim_wrapper.dtype=float32``.
        loss_scale: for float16: ``"dynamic"`` (``GradScaler()``), an initial scale (float) or
            a dict of ``GradScaler`` arguments. Ignored for bfloat16, which needs none.
        **kwargs: :class:`mmengine.optim.OptimWrapper` arguments (``optimizer``,
            ``clip_grad``, ``accumulative_counts``).
    """

    def __init__(
        self,
        dtype: Optional[str] = None,
        loss_scale: Union[str, float, dict] = "dynamic",
        **kwargs,
    ) -> None:
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).replace("torch.", "")
        if dtype is not None and dtype not in AMP_DTYPES + ("float32",):
            raise ValueError(
                f"dtype must be one of {AMP_DTYPES + ('float32',)} or None, got {dtype!r}"
            )
        if not (loss_scale == "dynamic" or isinstance(loss_scale, (float, int, dict))):
            raise TypeError(
                f"loss_scale must be 'dynamic', a float or a dict of GradScaler arguments, "
                f"got {loss_scale!r}"
            )
        super().__init__(**kwargs)
        self.dtype = dtype
        self.loss_scale = loss_scale
        self.device_type: Optional[str] = None
        self.loss_scaler = None
        self._pending_scaler_state = None

    # -- precision --------------------------------------------------------------------------
    def _setup(self, model: nn.Module) -> None:
        """Fix the device and dtype from the model (built, and moved, before the first step)."""
        if self.device_type is not None:
            return
        param = next(model.parameters(), None)
        self.device_type = param.device.type if param is not None else "cpu"
        if self.dtype is None:
            self.dtype = default_amp_dtype(self.device_type)
        if self.dtype == "float16":
            if isinstance(self.loss_scale, dict):
                args = dict(self.loss_scale)
            elif self.loss_scale == "dynamic":
                args = {}
            else:
                args = dict(init_scale=float(self.loss_scale))
            self.loss_scaler = torch.amp.GradScaler(self.device_type, **args)
            if self._pending_scaler_state is not None:
                self.loss_scaler.load_state_dict(self._pending_scaler_state)
                self._pending_scaler_state = None

    @property
    def cast_dtype(self) -> Optional[torch.dtype]:
        return None if self.dtype is None else getattr(torch, self.dtype)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """The parent's context (gradient accumulation) with autocast on the model's device."""
        self._setup(model)
        with super().optim_context(model):
            with torch.autocast(
                device_type=self.device_type,
                dtype=self.cast_dtype,
                enabled=self.dtype != "float32",
            ):
                yield

    # -- loss scaling (float16 only) ------------------------------------------------------------
    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        if self.loss_scaler is None:
            return super().backward(loss, **kwargs)
        self.loss_scaler.scale(loss).backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs) -> None:
        if self.loss_scaler is None:
            return super().step(**kwargs)
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update()

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.loss_scaler is not None:
            state["loss_scaler"] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        scaler = state_dict.pop("loss_scaler", None)
        if scaler is not None:
            if self.loss_scaler is not None:
                self.loss_scaler.load_state_dict(scaler)
            else:  # resumed before the first step: the scaler is made with the device
                self._pending_scaler_state = scaler
        super().load_state_dict(state_dict)
