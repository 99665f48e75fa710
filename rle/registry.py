"""mmengine registries of the ``rle`` scope.

Children of mmengine's root registries, so configs can mix ``rle`` classes with mmengine's own.
``locations`` lets a registry import the packages that register into it lazily, on the first
build: ``rle`` never imports ``heads`` at import time, yet ``MODELS.build(dict(type='RLEHead'))``
works.
"""

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

__all__ = ["DATASETS", "HOOKS", "METRICS", "MODELS", "OPTIM_WRAPPERS", "TRANSFORMS"]

MODELS = Registry("model", parent=MMENGINE_MODELS, scope="rle", locations=["heads", "rle.models"])
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, scope="rle", locations=["rle.datasets"])
TRANSFORMS = Registry(
    "transform", parent=MMENGINE_TRANSFORMS, scope="rle", locations=["rle.datasets"]
)
METRICS = Registry("metric", parent=MMENGINE_METRICS, scope="rle", locations=["rle.evaluation"])
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope="rle", locations=["rle.engine"])
OPTIM_WRAPPERS = Registry(
    "optim_wrapper", parent=MMENGINE_OPTIM_WRAPPERS, scope="rle", locations=["rle.amp"]
)
