"""Activation functions: forward ``y = f(x)`` and backward ``dx = dy * f'(x)`` (from ``y``).

Each is an :class:`ActivationFunction` naming the backend's forward / backprop pair, so a
backend may fuse it with the bias add (``Backend.bias_activation``). Formulas:

- ``linear``      f(x) = x                              f' = 1
- ``step``        f(x) = 1[x >= 0]                      f' = 0 (perceptron demos only)
- ``sigmoid``     f(x) = 1 / (1 + e^-x)  (overflow-free) f' = y (1 - y)
- ``tanh``        f(x) = tanh(x)                        f' = 1 - y^2
- ``relu``        f(x) = max(0, x)                      f' = 1[x > 0]
- ``leaky_relu``  f(x) = max(alpha x, x), alpha = 0.01  f' = 1 or alpha
- ``softmax``     f(x) = exp(x - max) / sum exp(x - max) over the last axis;
                  backward is the Jacobian-vector product y * (dy - sum(dy * y)).
"""
from __future__ import annotations

from ..backend.registry import resolve
from ..backend import get_backend


class ActivationFunction:
    """A named activation; call it on an array to apply it with the current backend."""

    def __init__(self, name: str, alpha: float = 0.0):
        self.name = name
        self.alpha = float(alpha)

    def forward(self, ops, x, out=None):
        """y = f(x)."""
        return ops.activation(self.name, x, out=out, alpha=self.alpha)

    def backward(self, ops, dy, y, out=None):
        """dx = dy * f'(x), computed from the output y."""
        return ops.backprop_activation(self.name, dy, y, out=out, alpha=self.alpha)

    def __call__(self, x):
        ops = get_backend()
        return self.forward(ops, ops.asarray(x))

    def get_config(self) -> dict:
        config = {"name": self.name}
        if self.name == "leaky_relu":
            config["alpha"] = self.alpha
        return config

    def __eq__(self, other):
        return isinstance(other, ActivationFunction) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((self.name, self.alpha))

    def __repr__(self):
        extra = f", alpha={self.alpha}" if self.name == "leaky_relu" else ""
        return f"ActivationFunction({self.name!r}{extra})"


def LeakyReLU(alpha: float = 0.01) -> ActivationFunction:
    """Leaky ReLU max(alpha x, x) with slope ``alpha`` in [0, 1)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha < 1.0:
        raise ValueError(f"leaky relu alpha must be a number in [0, 1); got {alpha!r}")
    return ActivationFunction("leaky_relu", alpha)


linear = ActivationFunction("linear")
step = ActivationFunction("step")
sigmoid = ActivationFunction("sigmoid")
tanh = ActivationFunction("tanh")
relu = ActivationFunction("relu")
leaky_relu = LeakyReLU(0.01)
softmax = ActivationFunction("softmax")

_REGISTRY = {
    "linear": lambda: linear,
    "step": lambda: step,
    "heaviside": lambda: step,
    "sigmoid": lambda: sigmoid,
    "tanh": lambda: tanh,
    "relu": lambda: relu,
    "leaky_relu": lambda: leaky_relu,
    "softmax": lambda: softmax,
}

#: Names ``get`` accepts.
NAMES = tuple(sorted(_REGISTRY))


def get(identifier, argument: str = "activation") -> ActivationFunction:
    """The activation ``identifier`` names; ``None`` means linear."""
    if identifier is None:
        return linear
    return resolve(identifier, _REGISTRY, ActivationFunction, "activation", argument)


def from_config(config: dict) -> ActivationFunction:
    if config["name"] == "leaky_relu":
        return LeakyReLU(config.get("alpha", 0.01))
    return get(config["name"])
