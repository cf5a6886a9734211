"""The network's pieces: layers, activations, losses, metrics, initializers and the flat
parameter buffer the layers' weights are views of. They compute through the backend and never
import NumPy or CuPy for arithmetic."""
