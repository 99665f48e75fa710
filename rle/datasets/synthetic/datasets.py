"""The mmengine datasets on the synthetic sets, generated on first use (what configs name).

A config that names a missing synthetic folder generates it first (deterministic by seed);
in a multi-process run rank 0 generates while the others wait.
"""

from __future__ import annotations

from typing import Callable, Optional

from rle.datasets.coco import CocoKeypointDataset
from rle.datasets.h36m import H36MDataset
from rle.datasets.synthetic.coco import ensure_synth_coco
from rle.datasets.synthetic.h36m import ensure_synth_h36m
from rle.registry import DATASETS

__all__ = ["SynthCocoDataset", "SynthH36MDataset", "ensure_once"]


def ensure_once(ensure: Callable, root: str, **kwargs):
    """Run ``ensure(root, **kwargs)`` on rank 0 first, then on the others (which then find
    the folder complete and only read the paths).

    Args:
        ensure: :func:`ensure_synth_coco` or :func:`ensure_synth_h36m`.
        root: dataset folder.
        **kwargs: the generator's arguments (``progress`` is set here).

    Returns:
        The paths dict of the set's generator.
    """
    from mmengine.dist import barrier, get_rank

    if get_rank() == 0:
        paths = ensure(root, progress=True, **kwargs)
        barrier()
    else:
        barrier()
        paths = ensure(root, progress=False, **kwargs)
    return paths


@DATASETS.register_module()
class SynthCocoDataset(CocoKeypointDataset):
    """:class:`CocoKeypointDataset` on SynthCOCO.

    Args:
        data_root: the synthetic folder (generated when missing or made with other
            parameters).
        split: ``"train"`` or ``"val"``.
        synth_cfg: generator parameters (``num_train_images``, ``num_val_images``,
            ``image_size``, ``seed``, and for easier sets ``person_height``, ``max_people``,
            ``clutter``, ``max_yaw``, ``roll``), see
            :func:`rle.datasets.synthetic.generate_synth_coco`.
        use_detections: evaluate on the generated detection boxes instead of the GT boxes.
        kwargs: :class:`CocoKeypointDataset` arguments (pipeline, test_mode, ...).
    """

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        synth_cfg: Optional[dict] = None,
        use_detections: bool = False,
        **kwargs,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        paths = ensure_once(ensure_synth_coco, data_root, **dict(synth_cfg or {}))
        if use_detections:
            kwargs["bbox_file"] = str(paths["val_detections"])
        super().__init__(
            ann_file=str(paths[f"{split}_json"]),
            data_prefix=dict(img=str(paths[f"{split}_images"])),
            **kwargs,
        )


@DATASETS.register_module()
class SynthH36MDataset(H36MDataset):
    """:class:`H36MDataset` on SynthH36M, in either written layout.

    Args:
        data_root: the synthetic folder (generated when missing).
        split: ``"train"`` (S1, S5, S6, S7, S8) or ``"test"`` (S9, S11).
        layout: ``"npz"`` (MMPose) or ``"rle_json"`` (official RLE).
        synth_cfg: generator parameters (``frames_per_subject``, ``image_size``, ``seed``,
            ``cameras_pkl``), see :func:`rle.datasets.synthetic.generate_synth_h36m`.
    """

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        layout: str = "npz",
        synth_cfg: Optional[dict] = None,
        **kwargs,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if layout not in ("npz", "rle_json"):
            raise ValueError(f"layout must be 'npz' or 'rle_json', got {layout!r}")
        paths = ensure_once(ensure_synth_h36m, data_root, **dict(synth_cfg or {}))
        if layout == "npz":
            kwargs.update(
                ann_file=str(paths[f"{split}_npz"]), camera_param_file=str(paths["cameras"])
            )
        else:
            kwargs.update(ann_file=str(paths[f"{split}_json"]))
        super().__init__(data_prefix=dict(img=str(paths["images"])), split=split, **kwargs)
