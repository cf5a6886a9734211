"""Resolving Keras-style identifiers (a string, an instance, or a class) to objects."""
from __future__ import annotations


def resolve(identifier, registry: dict, base: type, kind: str, argument: str):
    """Return the object ``identifier`` names.

    ``registry`` maps lower-case names to zero-argument factories; an instance of ``base`` is
    returned as it is; a subclass of ``base`` is instantiated. Anything else raises a
    ValueError (unknown name) or TypeError (wrong type) that names ``argument`` and lists the
    accepted names.
    """
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    if isinstance(identifier, str):
        factory = registry.get(identifier.lower())
        if factory is None:
            known = ", ".join(sorted(registry))
            raise ValueError(f"unknown {kind} {identifier!r} for {argument}; expected one of: {known}")
        return factory()
    raise TypeError(f"{argument} must be a {kind} name (str) or a {base.__name__} instance; "
                    f"got {type(identifier).__name__} {identifier!r}")
