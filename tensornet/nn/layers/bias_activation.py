"""What Dense and Conv2D share after their product z: the bias and the activation on the rows
of z, and the activation's backward."""
from __future__ import annotations


class BiasActivation:
    """Mixin of a layer with ``activation``, ``use_bias`` and a ``bias`` weight (Dense, Conv2D);
    ``_z`` is the product before the bias, ``_y`` the output."""

    @property
    def output_activation(self):
        return self.activation.name

    @property
    def logits(self):
        return self._z

    def _bias_activation(self, z):
        """y = f(z + b) over the rows of ``z`` (rows, units): linear adds the bias in place in z;
        a bias and f fused by the backend's ``bias_activation``; no bias, f alone."""
        ops, act = self.ops, self.activation
        if act.name == "linear":
            return ops.bias_add(z, self.weights["bias"], out=z) if self.use_bias else z
        if self.use_bias:
            return ops.bias_activation(z, self.weights["bias"], act.name, out=self.workspace("y", z.shape),
                                       alpha=act.alpha)
        return act.forward(self.ops, z, out=self.workspace("y", z.shape))

    def _activation_backward(self, dy, through_activation):
        """dz = dy f'(z), from the layer's output y (dy itself when linear or not through f)."""
        if through_activation and self.activation.name != "linear":
            return self.activation.backward(self.ops, dy, self._y, out=self.workspace("dz", dy.shape))
        return dy
