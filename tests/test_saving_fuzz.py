"""Fuzzing the model loader (tensornet.io.archive.read_archive, tensornet.models.load_model, load_weights) with hypothesis.

One real model (Dense + BatchNormalization + Dropout + Dense, Adam, fit for an epoch) is saved
once; every property loads variants of that file and requires either a clean load or a
ValueError naming the file, never another exception, with a peak of traced memory (tracemalloc,
NumPy's buffers included) within 16 times the file's size plus 8 MiB, whatever sizes the file
claims:

- byte-level mutations of the file (bit flips, overwritten, inserted and deleted bytes,
  truncation): a load that succeeds gives exactly the saved weights, layer state and optimizer
  state (the checksum covers everything);
- mutations inside the zip with valid CRCs (rewritten ``.npy`` headers: shapes such as
  ``(10**12,)``, dtypes, fortran order, data lengths; members dropped, duplicated, renamed,
  compressed): the same;
- mutations of the header JSON and of the arrays written back with ``write_archive`` (so the
  checksum is valid): deleted keys, values of other types, huge or negative sizes, other layer
  classes, bad weight lists, bit generators and optimizer state; arrays of other shapes and
  dtypes, missing or extra: a load that succeeds gives a model whose weights are the stored ones;
- ``load_weights`` of all of these into a built model: a file that fails leaves the model's
  weights and state untouched.

The runs are derandomized (reproducible) and keep no example database.
``python bench/fuzz_loaders.py --examples N`` runs the same properties longer.
"""
from __future__ import annotations

import copy
import gc
import io
import re
import struct
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import strategies as st

from fuzzing import byte_mutations, report_and_check, run, run_written, write_archive, write_bytes

import tensornet as tn
from tensornet.io import archive, npz as _npz
from tensornet.layers import BatchNormalization, Dense, Dropout
from tensornet.models import Sequential, load_model

BYTE_EXAMPLES = 1000
ZIP_EXAMPLES = 400
HEADER_EXAMPLES = 300
WEIGHTS_EXAMPLES = 300
#: Fixed allowance beside 16 x the file size. What the bound catches is allocation driven by sizes a
#: file declares (a hostile one claims gigabytes); tracemalloc counts every thread of the process,
#: and a few MiB from another thread inside the measured call must not fail it.
_SLACK = 8 << 20

def make_model(seed=0):
    model = Sequential([Dense(8, activation="relu", input_shape=(6,)), BatchNormalization(),
                        Dropout(0.25, seed=3), Dense(3, activation="softmax")], seed=seed)
    model.compile(optimizer=tn.optimizers.Adam(learning_rate=0.01), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class Saved:
    """The saved model: its file's bytes, (header, arrays) as read back, and its members."""

    def __init__(self, directory):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 6)).astype("float32")
        y = tn.utils.to_categorical(rng.integers(0, 3, 64), 3)
        model = make_model()
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
        self.path = directory / "model.npz"
        model.save(self.path)
        self.data = self.path.read_bytes()
        self.header, self.arrays = archive.read_archive(self.path)
        self.members = zip_members(self.data)
        load_model(self.path)  # imports and first-use caches happen here, not under tracemalloc


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return Saved(tmp_path_factory.mktemp("saved"))


def zip_members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def zip_of(members, deflated=()):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are on purpose
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for name, body in members:
                archive.writestr(name, body, zipfile.ZIP_DEFLATED if name in deflated else zipfile.ZIP_STORED)
    return buffer.getvalue()


def npy_bytes(descr, fortran_order, shape, body, version=1):
    """A .npy whose header holds these literal values (any, even absurd), correctly framed."""
    text = f"{{'descr': {descr}, 'fortran_order': {fortran_order}, 'shape': {shape}, }}"
    prefix = 12 if version == 1 else 14
    text += " " * (-(prefix + len(text) + 1) % 64) + "\n"
    length = struct.pack("<H" if version == 1 else "<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + length + text.encode("latin1") + body


# ------------------------------------------------------------------ strategies


SHAPES = ["(1000000000000,)", "(1000000000,)", "(1000000000, 1000000000)", "(0,)", "(-1,)", "()",
          f"({2**63},)", "(3, 0, 1000000000000000000)", f"({'1, ' * 70})", "(8,)", "(6, 8)", "(8, 6)", "(48,)",
          "(1, 48)", "[6, 8]", "(6.0, 8)", "(True,)", "'x'", "(10**9,)"]
DESCRS = ["'<f4'", "'<f8'", "'>f4'", "'|u1'", "'|O'", "'<U3'", "'|V0'", "'|V4'", "'<c8'", "'bogus'",
          "[('a', '<f4')]", "[('a', '|O')]", "('<f4', (2,))", f"'{'<f4' * 3000}'", "None", "[]"]


@st.composite
def npy_edits(draw, name, body):
    """One member's .npy with its header rewritten (shape, dtype, order, length), or mutated bytes."""
    header_length = struct.unpack("<H", body[8:10].ljust(2, b"\0"))[0]  # any bytes: an earlier edit may have cut it
    data = body[10 + header_length:]
    kind = draw(st.sampled_from(["rewrite", "rewrite", "bytes", "data"]))
    if kind == "bytes":
        return draw(byte_mutations(body, within=10 + header_length))
    if kind == "data":
        cut = draw(st.integers(0, len(data) + 8))
        data = data[:cut] + bytes(max(0, cut - len(data)))
        return body[:10 + header_length] + data
    return npy_bytes(draw(st.sampled_from(DESCRS + ["'<f4'"] * 4)), draw(st.sampled_from(["False", "True", "0"])),
                     draw(st.sampled_from(SHAPES)), data[:draw(st.integers(0, len(data)))] if draw(st.booleans())
                     else data, version=draw(st.sampled_from([1, 1, 2])))


@st.composite
def zip_edits(draw, members):
    """The members re-zipped (valid CRCs) after 1..3 edits of .npy headers, names or the member list."""
    members = list(members)
    deflated = set()
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["npy", "npy", "npy", "drop", "duplicate", "rename", "deflate", "extra"]))
        i = draw(st.integers(0, len(members) - 1)) if members else None
        if i is None:
            members.append(("x.npy", b""))
        elif op == "npy":
            members[i] = (members[i][0], draw(npy_edits(*members[i])))
        elif op == "drop":
            del members[i]
        elif op == "duplicate":
            members.insert(draw(st.integers(0, len(members))), members[i])
        elif op == "rename":
            members[i] = (draw(st.sampled_from(["header.npy", "checksum.npy", "weights/0.npy", "weights/9.npy",
                                                "header", "weights/0.npy.npy", "x"])), members[i][1])
        elif op == "deflate":
            deflated.add(members[i][0])
        else:
            members.append((f"extra{i}.npy", npy_bytes("'<f4'", "False", "(2,)", bytes(8))))
    return zip_of(members, deflated)


JSON_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, 1, -1, 3, 10**9, 10**12, -10**9, 2**63, 1.5, -0.5, float("nan"),
                     float("inf"), "", "x", "Dense", "float64", "PCG64", [], {}, [10**9], [10**5, 10**5], [-1],
                     [0], [6], {"name": "relu"}]),
    st.integers(), st.text(max_size=4), st.lists(st.integers(-2, 10**9), max_size=3))


def _paths(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield path + (key,)
            yield from _paths(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield path + (i,)
            yield from _paths(value, path + (i,))


def _targeted(header):
    """(path, value) edits aimed at what the loader must check."""
    edits = []
    for i, layer in enumerate(header["model"]["layers"]):
        base = ("model", "layers", i)
        edits += [(base + ("class",), name) for name in ["Dense", "Dropout", "Flatten", "Activation",
                                                          "BatchNormalization", "Layer", "Nope", "Sequential"]]
        if "units" in layer["config"]:
            edits += [(base + ("config", "units"), v) for v in [10**9, 10**12, 0, -3, 9, "8"]]
        edits += [(base + ("config", "input_shape"), v) for v in [[10**9], [10**5, 10**5], [-1], [], [0], [7]]]
        edits += [(base + ("config", key), v) for key, v in [("scale", False), ("center", False), ("rate", 2.0),
                                                             ("seed", -1), ("seed", "x"), ("use_bias", False)]]
    edits += [(("model", "input_shape"), v) for v in [[10**9], [10**5, 10**5], [7], None, [-6]]]
    edits += [(("model", key), v) for key, v in [("built", False), ("dtype", "float64"), ("dtype", "int32"),
                                                 ("seed", -1), ("class", "Functional"), ("layers", [])]]
    edits += [(("weights",), v) for v in [None, [], header["weights"][::-1], header["weights"] + [[0, "kernel"]],
                                          header["weights"][:-1], 10**9]]
    edits += [(("rng", "model", "bit_generator"), v) for v in ["MT19937", "Philox", "seed", "RandomState",
                                                               "default_rng", "random", "BitGenerator"]]
    edits += [(("optimizer", "class"), v) for v in ["SGD", "Nope", "Optimizer"]]
    edits += [(("optimizer", "buffers"), v) for v in [["float32/zzz"], ["x/y/z"], [], ["float64/m"]]]
    edits += [(("optimizer", "config", "foo"), 1), (("optimizer", "schedule", "name"), "LambdaSchedule"),
              (("compile", "loss", "name"), "nope"), (("kind",), "weights"), (("version",), 2),
              (("training", "epochs_completed"), float("inf")), (("training", "history"), [1])]
    return edits


def _set(header, path, value):
    node = header
    for key in path[:-1]:
        node = node[key]
    if isinstance(node, list) and not (isinstance(path[-1], int) and path[-1] < len(node)):
        return
    node[path[-1]] = value


@st.composite
def header_edits(draw, header):
    """A deep copy of ``header`` after 1..3 edits: targeted ones, or any key deleted or any value
    replaced (the ``arrays`` index excepted: write_archive rewrites it). Values go in as copies:
    a list sampled from JSON_VALUES and edited in place later would leak into every later example
    (and could be put inside itself)."""
    targets, header = _targeted(header), copy.deepcopy(header)
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            path, value = draw(st.sampled_from(targets))
            try:
                _set(header, path, copy.deepcopy(value))  # never the shared object: later edits change it
            except (KeyError, IndexError, TypeError):  # an earlier edit changed the structure
                pass
            continue
        paths = [p for p in _paths(header) if p[0] != "arrays"]
        path = draw(st.sampled_from(paths))
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(JSON_VALUES))
    return header


ARRAY_OPS = ["transpose", "flatten", "extra dim", "int32", "float64", "complex64", "bool", "<U2", "grow", "empty",
             "delete", "values"]


@st.composite
def array_edits(draw, arrays):
    """A copy of ``arrays`` after 0..2 edits: other shapes or dtypes, removed, added, other values."""
    arrays = dict(arrays)
    for _ in range(draw(st.integers(0, 2))):
        names = sorted(arrays)
        if draw(st.integers(0, 5)) == 0 or not names:
            name = draw(st.sampled_from(["weights/6", "state/0/moving_mean", "state/3/x", "optimizer/float32/m2"]))
            arrays[name] = np.zeros(draw(st.sampled_from([(8,), (3,), (0,), (2, 2)])), np.float32)
            continue
        name, op = draw(st.sampled_from(names)), draw(st.sampled_from(ARRAY_OPS))
        a = arrays[name]
        if op == "delete":
            del arrays[name]
            continue
        edit = {"transpose": lambda: a.T.copy(), "flatten": lambda: a.ravel(), "extra dim": lambda: a[None],
                "grow": lambda: np.zeros(10000, a.dtype), "empty": lambda: a.ravel()[:0],
                "values": lambda: a[::-1].copy()}.get(op, lambda: a.astype(op))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # complex -> real casts
            try:
                arrays[name] = edit()
            except (ValueError, TypeError):  # strings (an earlier edit) that do not parse as numbers
                pass
    return arrays


# ------------------------------------------------------------------ checking one load
def load_bounded(function, path, limit):
    """function(path) under tracemalloc: (result or None, ValueError or None); peak checked. The
    cyclic collector is paused meanwhile, so that finalizers of earlier tests' garbage do not run
    (and allocate) inside the measured call."""
    paused = gc.isenabled()
    gc.disable()
    tracemalloc.start()
    try:
        return function(path), None
    except ValueError as exc:
        assert str(path) in str(exc), f"the error does not name the file: {exc}"
        return None, exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if paused:
            gc.enable()
        assert peak <= limit, f"loading peaked at {peak} bytes (bound {limit})"


def load_counted(function, path, data, counts):
    """``function(path)`` under :func:`load_bounded` (memory bound 16 x the file + 8 MiB), counted
    in ``counts`` as loaded, rejected (ValueError: returns None) or other (re-raised)."""
    counts["files"] += 1
    try:
        result, error = load_bounded(function, path, 16 * len(data) + _SLACK)
    except AssertionError:
        raise
    except Exception:
        counts["other"] += 1
        raise
    counts["rejected" if error is not None else "loaded"] += 1
    return result


def check_load(path, data, counts, expect_arrays, exact=False):
    """load_model on ``data``: ValueError, or a model holding ``expect_arrays``'s weights (and,
    ``exact``, also its layer state and optimizer state: everything saved)."""
    model = load_counted(load_model, path, data, counts)
    if model is None:
        return
    if model.built:
        for i, w in enumerate(model.get_weights()):
            assert np.array_equal(w, expect_arrays[f"weights/{i}"].astype(w.dtype))
    if exact:
        state = model.layers[1].get_state_arrays()
        buffers = model.optimizer.get_state(model.ops)["buffers"]
        assert len(model.get_weights()) == 6 and len(state) == 2 and len(buffers) == 2
        assert all(np.array_equal(v, expect_arrays[f"state/1/{k}"]) for k, v in state.items())
        assert all(np.array_equal(v, expect_arrays[f"optimizer/{k}"]) for k, v in buffers.items())


def run_bytes(saved, directory, examples=BYTE_EXAMPLES):
    return run_written("model bytes", byte_mutations(saved.data), directory / "bytes.npz", write_bytes,
                       lambda path, data, counts, _: check_load(path, data, counts, saved.arrays, exact=True),
                       examples)


def run_zip(saved, directory, examples=ZIP_EXAMPLES):
    return run_written("model zip members", zip_edits(saved.members), directory / "zip.npz", write_bytes,
                       lambda path, data, counts, _: check_load(path, data, counts, saved.arrays, exact=True),
                       examples)


def run_header(saved, directory, examples=HEADER_EXAMPLES):
    return run_written("model header", st.tuples(header_edits(saved.header), array_edits(saved.arrays)),
                       directory / "header.npz", write_archive,
                       lambda path, data, counts, case: check_load(path, data, counts, case[1]), examples)


def run_load_weights(saved, directory, examples=WEIGHTS_EXAMPLES):
    """load_weights of byte-mutated or header-mutated files: the stored weights, or untouched."""
    path = directory / "weights.npz"
    target = make_model(seed=5)
    before = target.get_weights(), target.layers[1].get_state_arrays()
    cases = st.one_of(byte_mutations(saved.data).map(lambda data: (data, None)),
                      st.tuples(header_edits(saved.header), array_edits(saved.arrays)))

    def check(case, counts):
        if case[1] is None:
            path.write_bytes(case[0])
            arrays = saved.arrays
        else:
            archive.write_archive(path, *case)
            arrays = case[1]
        counts["files"] += 1
        try:
            _, error = load_bounded(target.load_weights, path, 16 * path.stat().st_size + _SLACK)
        except AssertionError:
            raise
        except Exception:
            counts["other"] += 1
            raise
        weights, state = target.get_weights(), target.layers[1].get_state_arrays()
        if error is not None:
            counts["rejected"] += 1
            assert all(np.array_equal(a, b) for a, b in zip(weights, before[0])), "a failed load changed weights"
            assert all(np.array_equal(state[k], before[1][k]) for k in state), "a failed load changed state"
            return
        counts["loaded"] += 1
        for i, w in enumerate(weights):
            assert np.array_equal(w, arrays[f"weights/{i}"].astype(w.dtype))
        target.set_weights(before[0])
        target.layers[1].set_state_arrays(before[1])

    return run("load_weights", cases, check, examples)


# ------------------------------------------------------------------ tests
def test_byte_mutations_load_exactly_or_raise_value_error(saved, tmp_path, report_counts):
    counts = run_bytes(saved, tmp_path)
    report_and_check("model bytes", counts, report_counts)


def test_zip_member_mutations_with_valid_crcs(saved, tmp_path, report_counts):
    counts = run_zip(saved, tmp_path)
    report_and_check("model zip members", counts, report_counts)


def test_header_and_array_mutations_with_valid_checksum(saved, tmp_path, report_counts):
    counts = run_header(saved, tmp_path)
    report_and_check("model header", counts, report_counts, some_loaded=True)


def test_load_weights_fails_cleanly_and_leaves_the_model_untouched(saved, tmp_path, report_counts):
    counts = run_load_weights(saved, tmp_path)
    report_and_check("load_weights", counts, report_counts, some_loaded=True)


def test_npy_header_claiming_10e12_elements_is_rejected_before_allocation(saved, tmp_path):
    """numpy.load would allocate the 4 TB the header declares before reading; read_npz refuses."""
    members = [(name, npy_bytes("'<f4'", "False", "(1000000000000,)", bytes(16)) if name == "weights/0.npy" else body)
               for name, body in saved.members]
    path = tmp_path / "huge.npz"
    path.write_bytes(zip_of(members))
    for function in (_npz.read_npz, archive.read_archive, load_model):
        _, error = load_bounded(function, path, 4 * path.stat().st_size + (1 << 20))
        assert error is not None and "1000000000000" in str(error), error


def test_overlapping_zip_entries_are_refused_before_reading(tmp_path):
    """A central directory listing one 1 MiB member 1000 times (a zip bomb without compression)."""
    data = zip_of([("a.npy", npy_bytes("'|u1'", "False", "(1048000,)", bytes(1048000)))])
    eocd = data.rindex(b"PK\x05\x06")
    count, size, offset = struct.unpack("<HII", data[eocd + 10:eocd + 20])
    central = data[offset:offset + size] * 1000
    tail = struct.pack("<HHII", 1000, 1000, len(central), offset) + data[eocd + 20:]
    path = tmp_path / "bomb.npz"
    path.write_bytes(data[:offset] + central + data[eocd:eocd + 8] + tail)
    with zipfile.ZipFile(path) as archive:
        assert len(archive.infolist()) == 1000  # a valid zip for zipfile
    _, error = load_bounded(_npz.read_npz, path, 1 << 20)
    assert error is not None and "claim more" in str(error)


def test_dense_with_a_billion_units_and_a_valid_checksum_is_refused_before_building(saved, tmp_path):
    header = copy.deepcopy(saved.header)
    header["model"]["layers"][0]["config"]["units"] = 10**9
    path = tmp_path / "wide.npz"
    archive.write_archive(path, header, saved.arrays)
    _, error = load_bounded(load_model, path, 1 << 20)
    assert re.search(r"malformed model file: .*\(6, 1000000000\)", str(error)), error


def test_failed_load_weights_leaves_the_model_untouched(saved, tmp_path):
    arrays = dict(saved.arrays, **{"weights/5": np.zeros(4, np.float32)})  # the last weight is wrong
    path = tmp_path / "w.npz"
    archive.write_archive(path, saved.header, arrays)
    target = make_model(seed=5)
    before = target.get_weights()
    with pytest.raises(ValueError, match=r"does not fit model .*/bias has shape \(3,\), the file's weight 5 \(4,\)"):
        target.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(target.get_weights(), before))


def test_header_that_is_not_a_json_object_is_a_clear_error(saved, tmp_path):
    for text in (b"[1, 2]", b"\xff\xfe", b"[" * 100000 + b"]" * 100000, b"{\"format\": "):
        members = {"header": np.frombuffer(text, np.uint8)}
        checksum = archive._checksum(text, {})
        members["checksum"] = np.frombuffer(checksum.encode(), np.uint8)
        path = tmp_path / "odd.npz"
        np.savez(path, **members)
        with pytest.raises(ValueError, match="odd.npz"):
            load_model(path)
