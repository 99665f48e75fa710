"""The base of the project's datasets: mmengine's ``BaseDataset`` with the rle conventions."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset, Compose

from rle.registry import TRANSFORMS

__all__ = ["KeypointBaseDataset"]


class KeypointBaseDataset(BaseDataset):
    """``BaseDataset`` whose pipeline entries are built from the ``rle`` transform registry
    (mmengine's ``Compose`` only searches its root registry), with the image folder given as
    ``data_prefix=dict(img=...)``, and which may be empty (mmengine cannot serialise an empty
    list, e.g. when every detection is below the score threshold).

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
        **kwargs,
    ) -> None:
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

    def _serialize_data(self):
        if not self.data_list:
            return np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64)
        return super()._serialize_data()
