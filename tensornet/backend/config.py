"""Global numeric settings: the default floating-point type (``floatx``)."""
from __future__ import annotations

_FLOAT_TYPES = ("float16", "float32", "float64")
_floatx = "float32"


def floatx() -> str:
    """The default float type of new models and layers (``"float32"`` unless changed)."""
    return _floatx


def set_floatx(dtype: str) -> None:
    """Set the default float type: one of ``"float16"``, ``"float32"``, ``"float64"``."""
    global _floatx
    _floatx = check_float_dtype(dtype, "dtype")


def check_float_dtype(dtype, argument: str) -> str:
    """Return ``dtype``'s name when it is a supported float type, else raise ValueError."""
    name = getattr(dtype, "name", None) or getattr(dtype, "__name__", None) or str(dtype)
    if name not in _FLOAT_TYPES:
        raise ValueError(f"{argument} must be one of {', '.join(_FLOAT_TYPES)}; got {dtype!r}")
    return name
