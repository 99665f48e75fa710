"""Per-sample randomness keyed by ``(seed, epoch, index)``: what makes a resumed run exact.

Augmentation used to draw from numpy's global generator, whose position depends on the whole
history of the process (and mmengine re-seeds it on ``--resume``). Instead every training
sample gets its own generator, a pure function of the run's seed, the epoch and the sample's
index (:func:`sample_rng`): the same sample of the same epoch is augmented identically in an
uninterrupted and in a resumed run, in any worker process, with any ``num_workers``.

The epoch travels *with the index*: :class:`KeyedSampler` wraps the train loader's sampler and
yields :class:`SampleKey` tuples, which the index queue carries to the worker processes, so
persistent workers (forked once, never told about later epochs) see the right epoch too.
:class:`~rle.datasets.base.KeypointBaseDataset` turns a key into ``results["rng"]``.
:func:`key_samples` installs the wrapper (``rle.engine.SetEpochHook`` does so before training).
"""

from __future__ import annotations

import itertools
import logging
from typing import Iterator, NamedTuple, Optional

import numpy as np
from torch.utils.data import Sampler

__all__ = ["KeyedSampler", "SampleKey", "key_samples", "sample_rng"]


def _check_count(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value < 2**64:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")


class SampleKey(NamedTuple):
    """The index of one training sample with what its augmentation is drawn from.

    Attributes:
        seed: the run's seed (``runner.seed``).
        epoch: the sampler's epoch.
        index: the index into the dataset.
    """

    seed: int
    epoch: int
    index: int


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample: ``np.random.default_rng([seed, epoch, index])``.

    Args:
        seed: the run's seed, >= 0.
        epoch: the epoch, >= 0.
        index: the dataset index, >= 0.

    Returns:
        a fresh ``numpy.random.Generator`` (PCG64).
    """
    for name, value in (("seed", seed), ("epoch", epoch), ("index", index)):
        _check_count(value, f"sample_rng: {name}")
    # default_rng([seed, epoch, index]) built directly: a uint64 array gives SeedSequence the
    # same words as the list, without its slow per-item conversion (this runs per sample)
    entropy = np.array((seed, epoch, index), dtype=np.uint64)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


class KeyedSampler(Sampler):
    """Wrap an index sampler to yield :class:`SampleKey` tuples instead of plain indices.

    The epoch is the wrapped sampler's ``epoch`` attribute (mmengine's ``DefaultSampler``,
    set by ``DistSamplerSeedHook`` or the iteration-based loop) when the iteration starts,
    plus one for every full ``len(sampler)`` indices yielded in that iteration, so that an
    endless sampler (``InfiniteSampler``) also moves to new draws on every pass.

    Args:
        sampler: the sampler to wrap (anything iterable with a length).
        seed: the run's seed, >= 0.
    """

    def __init__(self, sampler, seed: int) -> None:
        _check_count(seed, "KeyedSampler: seed")
        self.sampler = sampler
        self.seed = int(seed)
        self.skip = 0

    def skip_next(self, count: int) -> None:
        """Leave out the first ``count`` indices of the next iteration only (a run resumed in
        the middle of an epoch continues with the samples it had not trained on)."""
        _check_count(count, "KeyedSampler.skip_next: count")
        self.skip = int(count)

    def __iter__(self) -> Iterator[SampleKey]:
        # read when the iteration starts: set_epoch has been called by then
        epoch = int(getattr(self.sampler, "epoch", 0))
        per_pass = max(len(self.sampler), 1)
        skip, self.skip = self.skip, 0
        indices = itertools.islice(enumerate(self.sampler), skip, None)
        for position, index in indices:
            yield SampleKey(self.seed, epoch + position // per_pass, int(index))

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        """Forward to the wrapped sampler."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


def key_samples(dataloader, seed: int, logger: Optional[logging.Logger] = None):
    """Make ``dataloader`` yield keyed samples: wrap its batch sampler's sampler in a
    :class:`KeyedSampler` (once; a second call only updates the seed).

    Only for datasets that understand keys (:class:`~rle.datasets.base.KeypointBaseDataset`)
    and loaders that batch through a batch sampler; otherwise the loader is left alone (the
    transforms then draw from numpy's global generator) with a warning on ``logger``.

    Args:
        dataloader: a ``torch.utils.data.DataLoader``.
        seed: the run's seed, >= 0.
        logger: where the warning goes.

    Returns:
        the :class:`KeyedSampler`, or ``None`` when the loader was left alone.
    """
    from rle.datasets.base import KeypointBaseDataset

    batch_sampler = getattr(dataloader, "batch_sampler", None)
    dataset = getattr(dataloader, "dataset", None)
    if not isinstance(dataset, KeypointBaseDataset) or not hasattr(batch_sampler, "sampler"):
        if logger is not None:
            logger.warning(
                f"per-sample augmentation keys need a KeypointBaseDataset batched by a batch "
                f"sampler, got {type(dataset).__name__} and {type(batch_sampler).__name__}: "
                "augmentation draws from numpy's global generator and --resume is not exact"
            )
        return None
    _check_count(seed, "key_samples: seed")
    if isinstance(batch_sampler.sampler, KeyedSampler):
        batch_sampler.sampler.seed = int(seed)
    else:
        # DataLoader forbids replacing its sampler; the batch sampler's is a plain attribute,
        # read when an iteration starts
        batch_sampler.sampler = KeyedSampler(batch_sampler.sampler, seed)
    return batch_sampler.sampler
