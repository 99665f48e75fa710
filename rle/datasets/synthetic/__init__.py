"""Synthetic keypoint data written in the real COCO and Human3.6M file formats, by seed.

The real datasets cannot be downloaded here, so every loader, config and evaluation path of
the project is exercised on synthetic data that uses *exactly* their on-disk formats, and the
real datasets' own constants (keypoint names, person category, joints, actions, subjects,
camera ids) and camera conventions (:mod:`rle.datasets.cameras`).

* :mod:`~rle.datasets.synthetic.body`: the articulated 3-D body model both sets share.
* :mod:`~rle.datasets.synthetic.render`: drawing people, backgrounds and sensor grain.
* :mod:`~rle.datasets.synthetic.store`: output folders, completion marker, lock, ``ensure``.
* :mod:`~rle.datasets.synthetic.coco`: the SynthCOCO writer (:func:`generate_synth_coco`).
* :mod:`~rle.datasets.synthetic.h36m`: the SynthH36M writer (:func:`generate_synth_h36m`).
* :mod:`~rle.datasets.synthetic.datasets`: the mmengine datasets configs name.

Everything is drawn from one ``np.random.default_rng(seed)``: the same arguments give
byte-identical files. :func:`ensure_synth_coco` / :func:`ensure_synth_h36m` generate only
when ``root/.complete`` is missing or records different parameters.
"""

from rle.datasets.synthetic.coco import (
    COCO_OPTION_DEFAULTS,
    SYNTH_COCO,
    ensure_synth_coco,
    generate_synth_coco,
)
from rle.datasets.synthetic.datasets import SynthCocoDataset, SynthH36MDataset, ensure_once
from rle.datasets.synthetic.h36m import SYNTH_H36M, ensure_synth_h36m, generate_synth_h36m
from rle.datasets.synthetic.store import Generation, SynthSet, ensure, make

__all__ = [
    "COCO_OPTION_DEFAULTS",
    "SYNTH_COCO",
    "SYNTH_H36M",
    "Generation",
    "SynthCocoDataset",
    "SynthH36MDataset",
    "SynthSet",
    "ensure",
    "ensure_once",
    "ensure_synth_coco",
    "ensure_synth_h36m",
    "generate_synth_coco",
    "generate_synth_h36m",
    "make",
]
