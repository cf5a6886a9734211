"""Optimizers (:mod:`.optimizers`) and learning-rate schedules (:mod:`.schedules`): each update
rule runs as one backend call over the model's flat parameter and gradient buffers."""
