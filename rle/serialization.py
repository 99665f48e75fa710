"""Loading the files a user hands the library without running code from them.

A pickle is a program: unpickling calls whatever functions the file names, so a crafted
checkpoint or ``cameras.pkl`` loaded with plain :func:`pickle.load` or
``torch.load(weights_only=False)`` runs arbitrary code. torch's ``weights_only=True`` rejects
mmengine's own checkpoints (numpy objects and ``HistoryBuffer``, which pickles its statistics
methods through ``getattr``), and allowlisting ``getattr`` there reopens the hole: with a free
``getattr`` a payload walks from any admitted function's ``__globals__`` to ``os.system``.

So every file goes through a restricted unpickler whose ``find_class`` admits exact
``(module, name)`` pairs only, the ones found in our own training checkpoints, in MMPose 1.3.2 and
official RLE checkpoints and in MMPose's ``cameras.pkl`` (``pickletools.dis`` of each):

* checkpoints (:func:`load_checkpoint_file`): torch's tensor rebuild functions, storage
  classes, dtypes, ``torch.Size`` and ``torch.device``; ``collections.OrderedDict`` and
  ``Counter`` (``MultiStepLR`` milestones); numpy's ``ndarray``, ``dtype``, ``_reconstruct``,
  ``scalar`` and ``_frombuffer`` in both the ``numpy.core`` (numpy 1) and ``numpy._core``
  (numpy 2) spellings; mmengine's ``HistoryBuffer``; ``set``, ``frozenset``, ``bytearray``,
  ``complex``. Two builtins are replaced by guards: ``getattr`` answers only
  ``getattr(HistoryBuffer, "min" | "max" | "current" | "mean")`` (what ``HistoryBuffer``'s
  pickle asks for) and ``_codecs.encode`` only ``(str, "latin1")`` (how protocol 2 stores bytes).
* plain pickles such as ``cameras.pkl`` (:func:`load_pickle`): dicts, lists, tuples, str,
  numbers and numpy arrays and scalars only.

Anything else is refused with :class:`UnsafeFileError` naming the file and the global, before
the global is ever called. ``unsafe=True`` loads with plain :mod:`pickle` / ``torch.load``: for
files you trust only (you wrote them, or their source is trusted), e.g. a checkpoint that
pickles a custom class.
"""

from __future__ import annotations

import functools
import importlib
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Sequence, Tuple

__all__ = [
    "CheckpointMismatchError",
    "UnreadableFileError",
    "UnsafeFileError",
    "check_state_dict",
    "load_checkpoint_file",
    "load_pickle",
]

Global = Tuple[str, str]


class UnsafeFileError(pickle.UnpicklingError, ValueError):
    """A file references a global outside the allowlist; nothing from it was run.

    Attributes:
        global_name: the refused ``module.name`` (or the refused ``getattr`` call).
    """

    def __init__(self, message: str, global_name: str = "") -> None:
        super().__init__(message)
        self.global_name = global_name or message


class UnreadableFileError(ValueError):
    """A truncated, corrupt or otherwise unreadable checkpoint or pickle."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or tensor shapes do not fit the model it is loaded into."""


# -- the allowlists ----------------------------------------------------------------------------
# protocol 2 (torch.save's default) writes Python 2 module names; pickle maps them only in its
# own find_class, which a subclass overrides
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_HISTORY_BUFFER = "mmengine.logging.history_buffer"
_HISTORY_BUFFER_METHODS = frozenset({"min", "max", "current", "mean"})

_NUMPY_GLOBALS: FrozenSet[Global] = frozenset(
    {("numpy", "ndarray"), ("numpy", "dtype")}
    | {
        (f"numpy.{core}.{module}", name)
        for core in ("core", "_core")
        for module, name in (
            ("multiarray", "_reconstruct"),  # ndarray.__reduce__
            ("multiarray", "scalar"),  # numpy scalars (np.float64 in message_hub, ...)
            ("numeric", "_frombuffer"),  # ndarray.__reduce_ex__ for protocol 5
        )
    }
)


@functools.cache
def _checkpoint_globals() -> FrozenSet[Global]:
    import torch

    torch_names = {
        name
        for name in dir(torch)
        if isinstance(getattr(torch, name, None), torch.dtype)  # torch.float32 pickles by name
        or (name.endswith("Storage") and isinstance(getattr(torch, name, None), type))
    }
    rebuild = ("_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
               "_rebuild_parameter_with_state")  # fmt: skip
    return frozenset(
        {("torch", name) for name in torch_names | {"Size", "device"}}
        | {("torch._utils", name) for name in rebuild}
        | {("torch.storage", "TypedStorage"), ("torch.storage", "UntypedStorage")}
        | {("collections", "OrderedDict"), ("collections", "Counter")}
        | {("builtins", name) for name in ("set", "frozenset", "bytearray", "complex")}
        | {(_HISTORY_BUFFER, "HistoryBuffer")}
        # protocol >= 4 names the methods directly instead of through getattr
        | {(_HISTORY_BUFFER, f"HistoryBuffer.{m}") for m in _HISTORY_BUFFER_METHODS}
        | _NUMPY_GLOBALS
    )


def _describe(obj: Any) -> str:
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(qualname, str) and isinstance(getattr(obj, "__module__", None), str):
        return f"{obj.__module__}.{qualname}"
    return f"a {type(obj).__name__} object"


def _guarded_getattr(obj: Any, name: Any, *default: Any) -> Any:
    # never the builtin: getattr(admitted_function, "__globals__") leads to every module
    from mmengine.logging.history_buffer import HistoryBuffer

    exact = obj is HistoryBuffer and isinstance(name, str) and not default
    if exact and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    what = f"builtins.getattr({_describe(obj)}, {name!r})"
    raise UnsafeFileError(what, what)


def _guarded_encode(obj: Any, encoding: Any = "utf-8", *rest: Any) -> bytes:
    if isinstance(obj, str) and encoding in ("latin1", "latin-1") and not rest:
        return obj.encode("latin1")
    what = f"_codecs.encode({type(obj).__name__}, {encoding!r})"
    raise UnsafeFileError(what, what)


_GUARDED: Dict[Global, Callable] = {
    ("builtins", "getattr"): _guarded_getattr,
    ("_codecs", "encode"): _guarded_encode,
}


def _resolve(module: str, name: str) -> Any:
    if module.startswith(("numpy.core.", "numpy._core.")):
        # whichever spelling this numpy has (numpy 2 warns on numpy.core)
        rest = module.split(".", 2)[2]
        try:
            obj = importlib.import_module(f"numpy._core.{rest}")
        except ImportError:
            obj = importlib.import_module(f"numpy.core.{rest}")
    else:
        obj = importlib.import_module(module)
    for part in name.split("."):  # only exact allowlisted names get here
        obj = getattr(obj, part)
    return obj


class _RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` admits exactly the pairs of :meth:`allowed`; guarded names get guards."""

    @staticmethod
    def allowed() -> FrozenSet[Global]:
        return _NUMPY_GLOBALS

    guarded: Dict[Global, Callable] = {("_codecs", "encode"): _guarded_encode}

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if (module, name) in self.guarded:
            return self.guarded[(module, name)]
        if (module, name) not in self.allowed():
            raise UnsafeFileError(f"{module}.{name}", f"{module}.{name}")
        return _resolve(module, name)


class _CheckpointUnpickler(_RestrictedUnpickler):
    allowed = staticmethod(_checkpoint_globals)
    guarded = _GUARDED


class _CheckpointPickle:
    """The ``pickle_module`` handed to ``torch.load`` (it subclasses ``Unpickler`` and calls
    ``load`` for the legacy format's headers)."""

    Unpickler = _CheckpointUnpickler

    @staticmethod
    def load(file, **kwargs) -> Any:
        return _CheckpointUnpickler(file, **kwargs).load()


# -- loading -----------------------------------------------------------------------------------
_TRUE = ("1", "y", "yes", "true")


def _check_file(path: Any, what: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or os.PathLike), got {type(path).__name__}")
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _check_flag(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")


def _refused(path: str, what: str, kind: str, opt_in: str) -> UnsafeFileError:
    # the refused global right after the path: callers that shorten messages keep it
    admitted = "tensors, numpy arrays, plain containers" + (
        " and mmengine's HistoryBuffer" if kind == "checkpoint" else ""
    )
    message = (
        f"{path}: refused {what}: the safe loader (rle.serialization) admits only {admitted}; "
        f"a {kind} that needs more can run code when loaded; nothing else was called. Only if "
        f"you trust the file (you wrote it, or its source is trusted): {opt_in}"
    )
    return UnsafeFileError(message, what)


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:  # torch.load hands such archives to torch.jit.load
        return any(n.split("/", 1)[-1] == "constants.pkl" for n in z.namelist())


def _looks_corrupt(err: Exception) -> bool:
    if isinstance(err, (EOFError, pickle.UnpicklingError, zipfile.BadZipFile)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("zip archive" in text or "Stream" in text)


def _other_checkpoints(path: str) -> List[str]:
    # newest first; a file whose zip directory opens was at least written to the end
    here = Path(path).resolve()
    others = [p for p in here.parent.glob("*.pth") if p != here and zipfile.is_zipfile(p)]
    return [str(p) for p in sorted(others, key=lambda p: p.stat().st_mtime, reverse=True)]


def _unreadable(path: str, err: Exception, kind: str) -> UnreadableFileError:
    message = f"{path}: cannot load this {kind}: {type(err).__name__}: {err}"
    if _looks_corrupt(err):
        message += " (the file looks truncated or corrupt: an interrupted save or copy?)"
        others = _other_checkpoints(path) if kind == "checkpoint" else []
        if others:
            message += (
                f"; the newest other checkpoint in its folder that opens is {others[0]}: "
                "resume or evaluate from it instead (e.g. --resume PATH)"
            )
    return UnreadableFileError(message)


def load_checkpoint_file(path, map_location=None, *, unsafe: bool = False) -> Any:
    """Load a torch checkpoint without running code from it.

    Args:
        path: a local ``.pth`` / ``.pt`` file (torch's zip or legacy format).
        map_location: as :func:`torch.load` (``"cpu"``, a device, a dict or a function).
        unsafe: ``True``: plain ``torch.load(weights_only=False)``, which runs whatever the
            file's pickle names. Only for files you trust (you wrote them, or their source is
            trusted), e.g. a checkpoint pickling a custom class the allowlist lacks.

    Returns:
        the unpickled object (mmengine checkpoints: ``dict(meta, state_dict, ...)``).

    Raises:
        TypeError: ``path`` is not a path or ``unsafe`` not a bool.
        FileNotFoundError: ``path`` is not a file.
        UnsafeFileError: the file references a global outside the allowlist (message names
            it), or is a TorchScript archive.
        UnreadableFileError: a truncated, corrupt or otherwise unreadable file (message names
            it and the newest other checkpoint of its folder that opens).
    """
    import torch

    path = _check_file(path, "checkpoint file")
    _check_flag(unsafe, "unsafe")
    opt_in = (
        "pass --unsafe-load to the tools/ command, or call "
        "rle.engine.setup_engine(unsafe_load=True) or "
        "rle.serialization.load_checkpoint_file(path, unsafe=True)."
    )
    if unsafe:
        kwargs: Dict[str, Any] = dict(weights_only=False)
    elif os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in _TRUE:
        kwargs = dict(weights_only=True)  # the user asked torch for its own (stricter) loader
    else:
        if _is_torchscript(path):
            what = "a TorchScript archive (torch.jit.load runs its code)"
            raise _refused(path, what, "checkpoint", opt_in)
        kwargs = dict(weights_only=False, pickle_module=_CheckpointPickle)
    try:
        return torch.load(path, map_location=map_location, **kwargs)
    except UnsafeFileError as err:
        raise _refused(path, err.global_name, "checkpoint", opt_in) from None
    except Exception as err:  # noqa: BLE001 - torch's bare message does not name the file
        raise _unreadable(path, err, "checkpoint") from err


def load_pickle(path, *, unsafe: bool = False) -> Any:
    """Load a data pickle (e.g. MMPose's ``cameras.pkl``) without running code from it.

    Admits dicts, lists, tuples, sets of str, numbers, bytes and numpy arrays or scalars.

    Args:
        path: a local pickle file.
        unsafe: ``True``: plain :func:`pickle.load`, which runs whatever the file names. Only
            for files you trust.

    Returns:
        the unpickled object.

    Raises:
        TypeError: ``path`` is not a path or ``unsafe`` not a bool.
        FileNotFoundError: ``path`` is not a file.
        UnsafeFileError: the file references anything else (message names the global).
        UnreadableFileError: a truncated or corrupt file.
    """
    path = _check_file(path, "pickle file")
    _check_flag(unsafe, "unsafe")
    opt_in = (
        "load it with rle.serialization.load_pickle(path, unsafe=True) and save it again as "
        "plain dicts, lists, numbers, str and numpy arrays."
    )
    try:
        with open(path, "rb") as f:
            return pickle.load(f) if unsafe else _RestrictedUnpickler(f).load()
    except UnsafeFileError as err:
        raise _refused(path, err.global_name, "pickle", opt_in) from None
    except Exception as err:  # noqa: BLE001 - any other unpickling failure is a bad file
        raise _unreadable(path, err, "pickle") from err


# -- checkpoint / model match ------------------------------------------------------------------
def _first(keys: Sequence[str], n: int = 5) -> str:
    more = f", ... ({len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def check_state_dict(
    model_state: Mapping[str, Any],
    checkpoint: Mapping[str, Any],
    filename: str,
    revise_keys: Sequence[Tuple[str, str]] = ((r"^module\.", ""),),
) -> None:
    """Raise when a checkpoint's weights do not fit a model (what mmengine's non-strict load
    only logs, leaving a randomly initialised head behind).

    The checkpoint's ``state_dict`` (or the checkpoint itself) gets ``revise_keys`` applied as
    mmengine's ``_load_checkpoint_to_model`` does; as in mmengine's strict load, a missing
    BatchNorm ``num_batches_tracked`` is tolerated.

    Args:
        model_state: ``model.state_dict()``.
        checkpoint: the loaded checkpoint.
        filename: the checkpoint's file, for the message.
        revise_keys: ``(pattern, replacement)`` pairs applied to the checkpoint's keys.

    Raises:
        TypeError: ``checkpoint`` is not a mapping.
        CheckpointMismatchError: missing or unexpected keys or different shapes, listed with
            their counts (first five of each).
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"{filename}: expected a checkpoint dict, got {type(checkpoint).__name__}")
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise TypeError(f"{filename}: 'state_dict' must be a dict, got {type(state).__name__}")
    for pattern, replacement in revise_keys:
        state = {re.sub(pattern, replacement, k): v for k, v in state.items()}
    missing = [k for k in model_state if k not in state and "num_batches_tracked" not in k]
    unexpected = [k for k in state if k not in model_state]
    shapes = [
        f"{k} {tuple(state[k].shape)} in the checkpoint, {tuple(v.shape)} in the model"
        for k, v in model_state.items()
        if k in state and hasattr(v, "shape") and hasattr(state[k], "shape")
        and tuple(state[k].shape) != tuple(v.shape)
    ]  # fmt: skip
    if not (missing or unexpected or shapes):
        return
    parts = [f"{len(missing)} missing keys: {_first(missing)}" if missing else "",
             f"{len(unexpected)} unexpected keys: {_first(unexpected)}" if unexpected else "",
             f"{len(shapes)} shape mismatches: {_first(shapes, 3)}" if shapes else ""]  # fmt: skip
    from rle.converters import detect_layout

    layout = detect_layout(state)
    hint = (
        f" It has the layout of {layout} checkpoints: convert it first with "
        f"`python tools/convert_checkpoint.py {filename} CONVERTED.pth --from {layout}`."
        if layout
        else ""
    )
    raise CheckpointMismatchError(
        f"{filename} does not fit the model: " + "; ".join(p for p in parts if p) + "." + hint
        + " Was it trained with another config (head, backbone, number of keypoints)? Evaluate "
        "it with the config it was trained with; to start from the matching weights only, use "
        "model.init_cfg=dict(type='Pretrained', checkpoint=...) instead of load_from."
    )  # fmt: skip
