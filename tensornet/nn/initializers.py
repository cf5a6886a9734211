"""Weight initializers (Keras names and defaults), seeded and reproducible.

fan_in / fan_out of a kernel of shape (in, out) are ``in`` and ``out``.

- ``glorot_uniform``  U(-l, l), l = sqrt(6 / (fan_in + fan_out))   (Dense kernel default)
- ``glorot_normal``   truncated N(0, s^2), s = sqrt(2 / (fan_in + fan_out))
- ``he_uniform``      U(-l, l), l = sqrt(6 / fan_in)
- ``he_normal``       truncated N(0, s^2), s = sqrt(2 / fan_in)
- ``lecun_uniform``   U(-l, l), l = sqrt(3 / fan_in)
- ``lecun_normal``    truncated N(0, s^2), s = sqrt(1 / fan_in)
- ``random_normal``   N(mean, stddev^2), defaults 0 and 0.05
- ``random_uniform``  U(minval, maxval), defaults -0.05 and 0.05
- ``zeros``, ``ones`` (bias default: zeros)

"Truncated" follows Keras' VarianceScaling: draws beyond two standard deviations are redrawn
and the scale is divided by 0.87962566103423978 so that the truncated distribution has
standard deviation s.
"""
from __future__ import annotations

import math

from ..backend.registry import resolve

_TRUNCATION_CORRECTION = 0.87962566103423978


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape`` (Keras' rule, receptive field included)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Draws an array of a given shape: ``initializer(ops, rng, shape, dtype)``."""

    name = "initializer"

    def __call__(self, ops, rng, shape, dtype="float32"):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name}


class Zeros(Initializer):
    """All zeros."""

    name = "zeros"

    def __call__(self, ops, rng, shape, dtype="float32"):
        return ops.zeros(shape, dtype)


class Ones(Initializer):
    """All ones."""

    name = "ones"

    def __call__(self, ops, rng, shape, dtype="float32"):
        out = ops.zeros(shape, dtype)
        out += 1
        return out


class RandomNormal(Initializer):
    """N(mean, stddev^2)."""

    name = "random_normal"

    def __init__(self, mean: float = 0.0, stddev: float = 0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, ops, rng, shape, dtype="float32"):
        return ops.random_normal(rng, shape, self.mean, self.stddev, dtype)

    def get_config(self):
        return {"name": self.name, "mean": self.mean, "stddev": self.stddev}


class RandomUniform(Initializer):
    """U(minval, maxval)."""

    name = "random_uniform"

    def __init__(self, minval: float = -0.05, maxval: float = 0.05):
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, ops, rng, shape, dtype="float32"):
        return ops.random_uniform(rng, shape, self.minval, self.maxval, dtype)

    def get_config(self):
        return {"name": self.name, "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(Initializer):
    """Variance ``scale / n`` with n = fan_in, fan_out or their mean (``mode``); uniform
    U(-l, l) with l = sqrt(3 scale / n), or truncated normal of that standard deviation."""

    name = "variance_scaling"

    def __init__(self, scale: float, mode: str, distribution: str, name: str | None = None):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be fan_in, fan_out or fan_avg; got {mode!r}")
        if distribution not in ("uniform", "truncated_normal"):
            raise ValueError(f"distribution must be uniform or truncated_normal; got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution
        if name:
            self.name = name

    def __call__(self, ops, rng, shape, dtype="float32"):
        fan_in, fan_out = fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return ops.random_uniform(rng, shape, -limit, limit, dtype)
        stddev = math.sqrt(variance) / _TRUNCATION_CORRECTION
        return ops.random_normal(rng, shape, 0.0, stddev, dtype, truncated=True)

    def get_config(self):
        return {"name": self.name}


def GlorotUniform():
    """U(-l, l), l = sqrt(6 / (fan_in + fan_out))."""
    return VarianceScaling(1.0, "fan_avg", "uniform", "glorot_uniform")


def GlorotNormal():
    """Truncated normal, stddev sqrt(2 / (fan_in + fan_out))."""
    return VarianceScaling(1.0, "fan_avg", "truncated_normal", "glorot_normal")


def HeUniform():
    """U(-l, l), l = sqrt(6 / fan_in)."""
    return VarianceScaling(2.0, "fan_in", "uniform", "he_uniform")


def HeNormal():
    """Truncated normal, stddev sqrt(2 / fan_in)."""
    return VarianceScaling(2.0, "fan_in", "truncated_normal", "he_normal")


def LecunUniform():
    """U(-l, l), l = sqrt(3 / fan_in)."""
    return VarianceScaling(1.0, "fan_in", "uniform", "lecun_uniform")


def LecunNormal():
    """Truncated normal, stddev sqrt(1 / fan_in)."""
    return VarianceScaling(1.0, "fan_in", "truncated_normal", "lecun_normal")


_REGISTRY = {
    "zeros": Zeros, "ones": Ones, "random_normal": RandomNormal, "random_uniform": RandomUniform,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_uniform": HeUniform,
    "he_normal": HeNormal, "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
}

#: Names ``get`` accepts.
NAMES = tuple(sorted(_REGISTRY))


def get(identifier, argument: str = "initializer") -> Initializer:
    """The initializer ``identifier`` names (a string or an Initializer)."""
    return resolve(identifier, _REGISTRY, Initializer, "initializer", argument)


def from_config(config: dict) -> Initializer:
    params = {k: v for k, v in config.items() if k != "name"}
    return _REGISTRY[config["name"]](**params)
