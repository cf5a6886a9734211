"""Layers, optimizers, schedules and random generators to and from the JSON configs a model
file keeps (constructor arguments, never code)."""
from __future__ import annotations

import inspect
import json

import numpy

_SKIPPED_OPTIMIZER_ARGS = {"self", "lr", "learning_rate", "decay", "kwargs"}
_BASE_OPTIMIZER_ARGS = ("clipnorm", "clipvalue", "global_clipnorm")


def layer_classes():
    from ..nn import layers

    classes = {}
    for name in dir(layers):
        obj = getattr(layers, name)
        if isinstance(obj, type) and issubclass(obj, layers.Layer):
            classes[obj.__name__] = obj
    return classes


def layer_from_config(class_name, config, custom_objects):
    from ..nn import activations, initializers

    cls = (custom_objects or {}).get(class_name) or layer_classes().get(class_name)
    if cls is None:
        raise ValueError(f"unknown layer class {class_name!r}; pass it in custom_objects={{'{class_name}': cls}}")
    kwargs = {}
    for key, value in config.items():
        if key == "activation" and isinstance(value, dict):
            value = activations.from_config(value)
        elif key.endswith("_initializer") and isinstance(value, dict):
            value = initializers.from_config(value)
        elif key == "input_shape" and value is not None:
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def schedule_config(schedule):
    config = schedule.get_config()
    return json.loads(json.dumps(config, default=repr))


def schedule_from_config(config, custom_objects):
    from ..optim import schedules

    if config["name"] == "LambdaSchedule":
        fn = (custom_objects or {}).get(config.get("fn"))
        if fn is None:
            raise ValueError(f"the model's learning rate is the function {config.get('fn')!r}, which a file cannot "
                             f"hold: pass it as load_model(path, custom_objects={{{config.get('fn')!r}: fn}})")
        return schedules.LambdaSchedule(fn)
    custom = (custom_objects or {}).get(config["name"])
    if custom is not None:
        return custom(**{k: v for k, v in config.items() if k != "name"})
    return schedules.from_config(config)


def optimizer_config(optimizer) -> dict:
    """Class name and constructor arguments of ``optimizer`` (read from its attributes)."""
    config = {}
    for name in inspect.signature(type(optimizer).__init__).parameters:
        if name in _SKIPPED_OPTIMIZER_ARGS:
            continue
        if not hasattr(optimizer, name):
            raise ValueError(f"cannot save optimizer {type(optimizer).__name__}: argument {name!r} is not "
                             "kept as an attribute of the same name")
        config[name] = getattr(optimizer, name)
    for name in _BASE_OPTIMIZER_ARGS:
        config[name] = getattr(optimizer, name, None)
    return {"class": type(optimizer).__name__, "config": config, "schedule": schedule_config(optimizer.schedule)}


def optimizer_from_config(spec, custom_objects):
    from ..optim import optimizers

    classes = {cls.__name__: cls for cls in vars(optimizers).values()
               if isinstance(cls, type) and issubclass(cls, optimizers.Optimizer)}
    cls = (custom_objects or {}).get(spec["class"]) or classes.get(spec["class"])
    if cls is None:
        raise ValueError(f"unknown optimizer class {spec['class']!r}")
    schedule = schedule_from_config(spec["schedule"], custom_objects)
    kwargs = {k: v for k, v in spec["config"].items() if v is not None or k not in _BASE_OPTIMIZER_ARGS}
    return cls(learning_rate=schedule, **kwargs)


def rng_state(rng):
    return None if rng is None else rng.bit_generator.state


def restore_rng(ops, state):
    rng = ops.rng(0)
    if rng.bit_generator.state["bit_generator"] != state["bit_generator"]:
        bit_generator = getattr(numpy.random, state["bit_generator"])()
        rng = numpy.random.Generator(bit_generator)
    rng.bit_generator.state = state
    return rng
