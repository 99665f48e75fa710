"""The base of the project's datasets: mmengine's ``BaseDataset`` with the rle conventions."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset, Compose

from rle.datasets.geometry import check_convention
from rle.datasets.holdout import check_holdout, split_holdout
from rle.datasets.sampler import SampleKey, sample_rng
from rle.registry import TRANSFORMS

__all__ = ["KeypointBaseDataset"]


class KeypointBaseDataset(BaseDataset):
    """``BaseDataset`` whose pipeline entries are built from the ``rle`` transform registry
    (mmengine's ``Compose`` only searches its root registry), with the image folder given as
    ``data_prefix=dict(img=...)``, and which can serialise an empty list (mmengine cannot;
    the project's COCO and Human3.6M datasets refuse to be empty with a named error at build
    time, since mmengine's sampler divides by the length).

    Indexed with a :class:`~rle.datasets.sampler.SampleKey` ``(seed, epoch, index)`` (what the
    train loader yields, :mod:`rle.datasets.sampler`), the pipeline gets
    ``results["rng"] = sample_rng(seed, epoch, index)``, which the ``Random*`` transforms and
    :class:`~rle.datasets.transforms.ColorJitter` draw from: a sample's augmentation is a pure
    function of the key. A plain int index leaves ``rng`` out (the transforms then draw from
    numpy's global generator).

    ``convention`` (:data:`rle.datasets.geometry.CONVENTIONS`, default ``"rle"``) is the pixel
    convention of the crops: every sample carries it as ``results["convention"]``, which
    :class:`~rle.datasets.transforms.GetBBoxCenterScale`, ``RandomFlip``, ``TopdownAffine`` and
    the estimator's decoding read (a config sets it once for every dataset and the model, see
    :func:`rle.engine.load_config`).

    ``holdout`` (default ``None``: every sample) keeps one side of a deterministic held-out
    part, ``dict(fraction=0.1, seed=0, part="train" | "holdout", key="img_id")``
    (:mod:`rle.datasets.holdout`): a training loader with ``part="train"`` and a calibration
    loader with ``part="holdout"`` read disjoint samples of the same annotations. It is applied
    after loading and before ``indices`` (so ``indices=N`` takes the first N held-out samples).

    ``kwargs`` go to ``BaseDataset`` (``test_mode``, ``lazy_init``, ``indices``,
    ``serialize_data``, ``max_refetch``).
    """

    def __init__(
        self,
        ann_file: str = "",
        data_root: str = "",
        data_prefix: Optional[dict] = None,
        pipeline: Sequence = (),
        metainfo: Optional[dict] = None,
        convention: str = "rle",
        holdout: Optional[dict] = None,
        **kwargs,
    ) -> None:
        self.convention = check_convention(convention)
        # checked now, applied by filter_data (full_init, maybe lazily)
        self.holdout = None if holdout is None else check_holdout(holdout, "dataset holdout")
        built = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(img=(data_prefix or {}).get("img", "")),
            pipeline=[],
            **kwargs,
        )
        self.pipeline = Compose(built)

    def filter_data(self) -> list:
        """The loaded samples on the ``holdout`` side (all of them without ``holdout``)."""
        data = super().filter_data()
        if self.holdout is None:
            return data
        return split_holdout(data, self.holdout, f"{self.ann_file or type(self).__name__}: holdout")

    def prepare_data(self, idx) -> dict:
        """The pipeline's output for ``idx``, an int or a :class:`SampleKey`."""
        rng = None
        if isinstance(idx, SampleKey):
            rng = sample_rng(*idx)
            idx = idx.index
        data_info = self.get_data_info(idx)
        data_info["convention"] = self.convention
        if rng is not None:
            data_info["rng"] = rng
        return self.pipeline(data_info)

    def _serialize_data(self):
        if not self.data_list:
            return np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64)
        return super()._serialize_data()
