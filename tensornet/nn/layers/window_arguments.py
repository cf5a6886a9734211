"""Checking the window arguments of Conv2D and the pooling layers (Keras' forms: an int or a
pair of ints, ``padding`` "valid" / "same", ``data_format`` "channels_last")."""
from __future__ import annotations


def int_pair(value, argument: str, layer: str) -> tuple:
    """``value`` as a pair of positive ints (an int n is (n, n)), or a ValueError naming it."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair):
        raise ValueError(f"{layer} {argument} must be a positive int or a pair of positive ints; got {value!r}")
    return pair


def padding_mode(padding, layer: str) -> str:
    """``"valid"`` or ``"same"`` (any case), or a ValueError."""
    mode = padding.lower() if isinstance(padding, str) else padding
    if mode not in ("valid", "same"):
        raise ValueError(f"{layer} padding must be 'valid' or 'same'; got {padding!r}")
    return mode


def check_data_format(data_format, layer: str) -> str:
    """Only ``"channels_last"`` (inputs (batch, height, width, channels)) is supported."""
    if data_format is None or data_format == "channels_last":
        return "channels_last"
    raise ValueError(f"{layer} supports data_format='channels_last' only (inputs (batch, height, width, "
                     f"channels)); got data_format={data_format!r}: transpose the images to channels last "
                     "(e.g. x.transpose(0, 2, 3, 1))")


def check_image_shape(input_shape, layer) -> tuple:
    """A per-example shape (height, width, channels), or a ValueError naming the layer."""
    if len(input_shape) != 3:
        raise ValueError(f"{type(layer).__name__} layer {layer.name!r} expects inputs of shape (batch, height, "
                         f"width, channels); got per-example shape {tuple(input_shape)} (add a Reshape layer, "
                         "e.g. Reshape((28, 28, 1)), before it)")
    return tuple(input_shape)


def check_windows(layer, input_shape, geometry, what: str):
    """A ValueError naming the layer and the shapes when a "valid" window does not fit."""
    (kh, _, dh, _, _, oh), (kw, _, dw, _, _, ow) = geometry
    if oh < 1 or ow < 1:
        size = f"{kh}x{kw}" if dh == dw == 1 else f"{kh}x{kw} (dilated to {dh * (kh - 1) + 1}x{dw * (kw - 1) + 1})"
        raise ValueError(f"{type(layer).__name__} layer {layer.name!r}: {what} {size} is larger than its input "
                         f"{input_shape[0]}x{input_shape[1]} with padding='valid' (per-example input shape "
                         f"{tuple(input_shape)}); use padding='same' or a smaller {what}")
