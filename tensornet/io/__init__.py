"""Files: the model archive format (:mod:`.archive`), its bounded ``.npz`` reader (:mod:`.npz`)
and atomic writes (:mod:`.files`). Below it is only the backend."""
