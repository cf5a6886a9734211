"""BatchNormalization over the last axis: the features of (batch, features) inputs, the channels
of (batch, height, width, channels) images (Keras' arguments and defaults)."""
from __future__ import annotations

from .. import initializers
from .base import Layer

_STATE_NAMES = ("moving_mean", "moving_variance")


class BatchNormalization(Layer):
    """Normalizes each feature with batch statistics in training and moving statistics in
    inference, then scales by ``gamma`` and shifts by ``beta``.

    Training (``training=True``), per feature over the N examples of the batch:
    mean = sum_i x_i / N, var = sum_i (x_i - mean)^2 / N (the *biased* variance, divided by N,
    as Keras 3's ``ops.moments``), x_hat = (x - mean) / sqrt(var + epsilon),
    y = gamma x_hat + beta; then, as Keras,
    moving_mean = moving_mean * momentum + mean * (1 - momentum) and
    moving_variance = moving_variance * momentum + var * (1 - momentum)
    (the same biased var feeds the moving average; no Bessel correction).

    Inference (``training=False``, ``predict``, ``evaluate``, validation):
    y = gamma (x - moving_mean) / sqrt(moving_variance + epsilon) + beta; the moving statistics
    are left unchanged.

    Backward (after a training forward pass; the batch statistics are differentiated):
    dbeta = sum dy, dgamma = sum dy x_hat,
    dx = (gamma / sqrt(var + epsilon)) / N * (N dy - sum dy - x_hat sum(dy x_hat)).

    ``gamma`` and ``beta`` are trainable weights in the model's flat buffer (absent with
    ``scale=False`` / ``center=False``); the moving statistics are non-trainable state held by
    the layer (``get_state_arrays`` / ``set_state_arrays``, saved with the model). The axis is
    the last one (``axis=-1``): for images (batch, h, w, c) each channel is normalized over
    the N h w values of the batch (the sums above run over them), as Keras does.

    ``synchronized=True`` (Keras 3's argument): in data-parallel ``fit`` the batch statistics are
    those of the global batch, every rank's rows, and backward sums over the ranks to match
    (``batch_norm_forward_synchronized`` / ``batch_norm_backward_synchronized``), so K ranks
    train like one process with the global batch. The sums go through ``statistics_sum``, which
    data-parallel training sets for each step; otherwise (one process, or the default False)
    each process normalises with the statistics of its own batch.

    >>> layer = BatchNormalization(momentum=0.9)
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, int) or axis not in (-1, 1, 3):
            raise ValueError("BatchNormalization supports only the last axis (axis=-1: the features of "
                             f"(batch, features) inputs, the channels of (batch, h, w, c) images); got axis={axis!r}")
        self._axis_argument = axis
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNormalization momentum must be a number in [0, 1]; got {momentum!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0.0 \
                or epsilon == float("inf"):
            raise ValueError(f"BatchNormalization epsilon must be a positive number; got {epsilon!r}")
        for argument, value in (("center", center), ("scale", scale), ("synchronized", synchronized)):
            if not isinstance(value, bool):
                raise TypeError(f"{argument} must be True or False; got {value!r}")
        self.axis = -1
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.synchronized = synchronized
        #: ``all_sum(buffer)``: a 1-D buffer summed over the ranks in place, set by data-parallel
        #: training around each step when ``synchronized``; None otherwise.
        self.statistics_sum = None
        self._count = None
        self.beta_initializer = initializers.get(beta_initializer, "beta_initializer")
        self.gamma_initializer = initializers.get(gamma_initializer, "gamma_initializer")
        self.moving_mean_initializer = initializers.get(moving_mean_initializer, "moving_mean_initializer")
        self.moving_variance_initializer = initializers.get(moving_variance_initializer,
                                                            "moving_variance_initializer")
        self.moving_mean = self.moving_variance = None
        self._x_hat = self._inv_std = None

    # --------------------------------------------------------------- building
    def compute_output_shape(self, input_shape):
        if self._axis_argument != -1 and self._axis_argument != len(input_shape):
            raise ValueError(f"BatchNormalization layer {self.name!r}: axis={self._axis_argument} is not the last "
                             f"axis of inputs of per-example shape {tuple(input_shape)}; only the last axis "
                             "(axis=-1) is supported")
        return input_shape

    def build_weights(self, input_shape):
        features = input_shape[-1]
        if self.scale:
            self.add_weight("gamma", (features,), self.gamma_initializer)
        if self.center:
            self.add_weight("beta", (features,), self.beta_initializer)

    def build(self, input_shape, ops=None, dtype=None):
        """Build as every layer, then allocate the moving statistics on the backend. A rebuild
        for the same number of features (a model rebuilt, or moved to another backend) keeps
        their values; otherwise they start from their initializers."""
        kept = self.get_state_arrays() if self.moving_mean is not None else None
        output_shape = super().build(input_shape, ops=ops, dtype=dtype)
        shape = (self.input_shape[-1],)
        if kept is not None and all(value.shape == shape for value in kept.values()):
            self.moving_mean = self.ops.asarray(kept["moving_mean"], dtype=self.dtype)
            self.moving_variance = self.ops.asarray(kept["moving_variance"], dtype=self.dtype)
        else:
            rng = self.ops.rng(0)  # only random initializers draw from it (Keras' defaults are constants)
            self.moving_mean = self.ops.asarray(self.moving_mean_initializer(self.ops, rng, shape, self.dtype),
                                                dtype=self.dtype)
            self.moving_variance = self.ops.asarray(
                self.moving_variance_initializer(self.ops, rng, shape, self.dtype), dtype=self.dtype)
        # own, writable buffers (never views of something else)
        self.moving_mean = self.ops.copy(self.moving_mean)
        self.moving_variance = self.ops.copy(self.moving_variance)
        self._x_hat = self._inv_std = None
        return output_shape

    def count_non_trainable_params(self) -> int:
        """The moving mean and variance (2 per feature), as Keras counts them."""
        if self.input_shape is None:
            return 0
        return 2 * self.input_shape[-1]

    # --------------------------------------------------------------- state
    def get_state_arrays(self) -> dict:
        """Host (NumPy) copies of the non-trainable state: ``moving_mean``, ``moving_variance``."""
        if self.moving_mean is None:
            return {}
        return {"moving_mean": self.ops.to_numpy(self.moving_mean).copy(),
                "moving_variance": self.ops.to_numpy(self.moving_variance).copy()}

    def set_state_arrays(self, state):
        """Copy ``moving_mean`` and ``moving_variance`` (host or device arrays) into the layer."""
        if not self.built:
            raise RuntimeError(f"BatchNormalization layer {self.name!r} must be built before its state is set")
        state = dict(state)
        if set(state) != set(_STATE_NAMES):
            raise ValueError(f"BatchNormalization layer {self.name!r} takes state {list(_STATE_NAMES)}; "
                             f"got {sorted(state)}")
        values = {}
        for name in _STATE_NAMES:
            target = getattr(self, name)
            value = state[name] if self.ops.is_array(state[name]) else self.ops.to_numpy(state[name])
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"BatchNormalization layer {self.name!r}: {name} must have shape "
                                 f"{tuple(target.shape)}; got {tuple(value.shape)}")
            values[name] = value
        for name, value in values.items():
            getattr(self, name)[...] = self.ops.asarray(value, dtype=self.dtype)

    # --------------------------------------------------------------- computing
    def forward(self, x, training=False):
        """Over (rows, features) = x reshaped to (-1, last axis); y has x's shape."""
        shape, x = x.shape, x.reshape(-1, x.shape[-1])
        y = self._forward_rows(x, training)
        return y.reshape(shape)

    def _forward_rows(self, x, training):
        ops = self.ops
        gamma = self.weights.get("gamma")
        beta = self.weights.get("beta")
        y_buffer = self.workspace("y", x.shape)
        if not training:
            self._x_hat = self._inv_std = None
            return ops.batch_norm_inference(x, self.moving_mean, self.moving_variance, gamma, beta,
                                            self.epsilon, out=y_buffer)
        x_hat_buffer = self.workspace("x_hat", x.shape)
        self._count = None
        if self.synchronized and self.statistics_sum is not None:
            y, x_hat, inv_std, mean, var, self._count = ops.batch_norm_forward_synchronized(
                x, gamma, beta, self.epsilon, self.statistics_sum, out=y_buffer, x_hat_out=x_hat_buffer)
        else:
            y, x_hat, inv_std, mean, var = ops.batch_norm_forward(x, gamma, beta, self.epsilon, out=y_buffer,
                                                                  x_hat_out=x_hat_buffer)
        ops.update_moving(self.moving_mean, mean, self.momentum)
        ops.update_moving(self.moving_variance, var, self.momentum)
        self._x_hat, self._inv_std = x_hat, inv_std
        return y

    def backward(self, dy, through_activation=True):
        if self._x_hat is None:
            raise RuntimeError(f"BatchNormalization layer {self.name!r}: backward needs a training forward "
                               "pass (forward(x, training=True)) first")
        shape, dy = dy.shape, dy.reshape(-1, dy.shape[-1])
        outputs = {"dx_out": self.workspace("dx", dy.shape), "dgamma_out": self.gradients.get("gamma"),
                   "dbeta_out": self.gradients.get("beta")}
        gamma = self.weights.get("gamma")
        if self._count is not None and self.needs_input_grad:
            dx, _, _ = self.ops.batch_norm_backward_synchronized(dy, self._x_hat, self._inv_std, gamma, self._count,
                                                                 self.statistics_sum, **outputs)
        else:
            dx, _, _ = self.ops.batch_norm_backward(dy, self._x_hat, self._inv_std, gamma, **outputs)
        return dx.reshape(shape) if self.needs_input_grad else None

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "synchronized": self.synchronized,
                "beta_initializer": self.beta_initializer.get_config(),
                "gamma_initializer": self.gamma_initializer.get_config(),
                "moving_mean_initializer": self.moving_mean_initializer.get_config(),
                "moving_variance_initializer": self.moving_variance_initializer.get_config()}
