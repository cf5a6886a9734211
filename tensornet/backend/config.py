"""Global numeric settings: the default floating-point type (``floatx``) and deterministic mode."""
from __future__ import annotations

import os
import sys
import warnings

_FLOAT_TYPES = ("float16", "float32", "float64")
_floatx = "float32"


def floatx() -> str:
    """The default float type of new models and layers (``"float32"`` unless changed)."""
    return _floatx


def set_floatx(dtype: str) -> None:
    """Set the default float type: one of ``"float16"``, ``"float32"``, ``"float64"``."""
    global _floatx
    _floatx = check_float_dtype(dtype, "dtype")


def image_data_format() -> str:
    """The image layout of Conv2D and the pooling layers: always ``"channels_last"``
    ((batch, height, width, channels)), as Keras' default; scripts that branch on it carry over."""
    return "channels_last"


_deterministic = False

#: cuBLAS workspace setting that makes its results independent of stream scheduling.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def deterministic() -> bool:
    """True once :func:`set_deterministic` turned deterministic mode on."""
    return _deterministic


def set_deterministic(enabled: bool = True) -> None:
    """Turn deterministic mode on (or off).

    With a seed, two runs on the same backend, machine and thread count already give bitwise
    identical weights: tensornet's kernels use no floating-point atomics and split work
    statically. Deterministic mode also removes what other code in the process could change:

    - cuBLAS: ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (set when not set already), which NVIDIA
      documents as making cuBLAS deterministic even when several streams are active. It takes
      effect only for cuBLAS handles created afterwards, so call this before the first GPU
      computation (a warning says so when CuPy is already imported);
    - CuPy: its optional reduction accelerators (CUB, cuTENSOR, chosen by
      ``CUPY_ACCELERATORS``) are turned off for tensornet's GPU backend, so sums go through
      CuPy's own fixed-order reduction kernels whatever the environment says.
    """
    global _deterministic
    if not isinstance(enabled, bool):
        raise TypeError(f"set_deterministic takes True or False; got {enabled!r}")
    _deterministic = enabled
    if not enabled:
        return
    cupy_backend = sys.modules.get("tensornet.backend.cupy_backend")
    if cupy_backend is not None:
        cupy_backend.use_plain_reductions()
    if os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in (":4096:8", ":16:8"):
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
        if "cupy" in sys.modules:
            warnings.warn("deterministic mode set CUBLAS_WORKSPACE_CONFIG after CuPy was imported: cuBLAS "
                          "handles created before this call keep their workspace setting", RuntimeWarning,
                          stacklevel=2)


def check_float_dtype(dtype, argument: str) -> str:
    """Return ``dtype``'s name when it is a supported float type, else raise ValueError."""
    name = getattr(dtype, "name", None) or getattr(dtype, "__name__", None) or str(dtype)
    if name not in _FLOAT_TYPES:
        raise ValueError(f"{argument} must be one of {', '.join(_FLOAT_TYPES)}; got {dtype!r}")
    return name
