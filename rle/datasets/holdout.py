"""A deterministic held-out part of a dataset: the calibration split taken from training data.

A dataset built with ``holdout=dict(fraction=0.1, seed=0, part="train")`` keeps the samples
*outside* the held-out part, the same dataset with ``part="holdout"`` keeps the held-out part
(what a calibration loader reads); the two are disjoint and together are the whole set.

Which samples are held out is decided per **group** (``key``, default ``"img_id"``: every
person of one image goes the same way, so a calibration crop never shows an image that was
trained on) by a hash of ``(seed, group value)``: ``blake2b(f"{seed}:{value}")`` read as a
number in ``[0, 1)``, held out when below ``fraction``. Why a hash and not a shuffled list:

* a group's side depends on nothing but its own value and the seed: the split is the same in
  every process, Python version and loading order, and adding images to the set moves none of
  the existing ones to the other side;
* ``hash()`` is salted per process (``PYTHONHASHSEED``), a seeded permutation depends on the
  order and count of the whole list.

The held-out share is ``fraction`` in expectation (binomial around it), not exactly.

It is opt-in: a dataset without ``holdout`` is unchanged (a training config that adds it trains
on fewer samples, i.e. is another experiment).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Dict, List

__all__ = ["HOLDOUT_PARTS", "check_holdout", "held_out", "split_holdout"]

#: the values of ``holdout["part"]``
HOLDOUT_PARTS = ("train", "holdout")
_KEYS = ("fraction", "seed", "part", "key")


def check_holdout(holdout: Any, source: str = "holdout") -> Dict[str, Any]:
    """``holdout`` checked and completed: ``fraction`` in (0, 1), ``seed`` int >= 0, ``part``
    in :data:`HOLDOUT_PARTS` (required), ``key`` a sample field name (default ``"img_id"``).

    Raises:
        TypeError: not a dict.
        ValueError: naming ``source`` and the bad entry.
    """
    if not isinstance(holdout, Mapping):
        raise TypeError(
            f"{source} must be a dict(fraction=..., seed=..., part='train'|'holdout'), got "
            f"{type(holdout).__name__}"
        )
    unknown = sorted(set(holdout) - set(_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown}; expected some of {list(_KEYS)}")
    fraction = holdout.get("fraction")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValueError(f"{source}['fraction'] must be a number in (0, 1), got {fraction!r}")
    if not 0 < fraction < 1:
        raise ValueError(f"{source}['fraction'] must be in (0, 1), got {fraction!r}")
    seed = holdout.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{source}['seed'] must be an int >= 0, got {seed!r}")
    part = holdout.get("part")
    if part not in HOLDOUT_PARTS:
        raise ValueError(f"{source}['part'] must be one of {HOLDOUT_PARTS}, got {part!r}")
    key = holdout.get("key", "img_id")
    if not isinstance(key, str) or not key:
        raise ValueError(f"{source}['key'] must be a sample field name, got {key!r}")
    return dict(fraction=float(fraction), seed=seed, part=part, key=key)


def held_out(value: Any, fraction: float, seed: int) -> bool:
    """Whether the group ``value`` (its ``str``) is in the held-out part (module docstring)."""
    digest = hashlib.blake2b(f"{seed}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < fraction


def split_holdout(data_list: List[dict], holdout: Any, source: str = "holdout") -> List[dict]:
    """The samples of ``data_list`` on ``holdout["part"]``'s side, in their order.

    Raises:
        ValueError: naming ``source``: a bad ``holdout``, a sample without the ``key`` field,
            or an empty result (a fraction too small or large for this many groups).
    """
    spec = check_holdout(holdout, source)
    key, want = spec["key"], spec["part"] == "holdout"
    out = []
    for i, sample in enumerate(data_list):
        if key not in sample:
            raise ValueError(
                f"{source}: sample {i} has no field {key!r} to group by (it has "
                f"{sorted(sample)[:12]}); set holdout['key']"
            )
        if held_out(sample[key], spec["fraction"], spec["seed"]) == want:
            out.append(sample)
    if not out:
        raise ValueError(
            f"{source}: part={spec['part']!r} of {len(data_list)} samples is empty with "
            f"fraction={spec['fraction']} (seed {spec['seed']}, grouped by {key!r})"
        )
    return out
