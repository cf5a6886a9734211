"""What the first ``fit`` on a machine costs: a run with Numba's compile cache empty against the
same run with the cache filled, each in a fresh Python process.

One run (a child process) imports tensornet, builds 784-512-512-10 (relu, softmax, float32),
compiles it with the optimizer named, trains one epoch through ``fit`` (batch 128, 10 %
validation split, accuracy) and evaluates it, as the README's train command does; it reports
the wall-clock time of each phase, the time Numba spent compiling each function (a
``numba.core.event`` listener on ``numba:compile`` and a wrapper of a C callback's uncached
compile, nested compiles counted once, in the outermost; a child process compiling a job of the
step into the disk cache is not counted) and the step ``fit`` took.

A *cold* run gets an empty ``NUMBA_CACHE_DIR`` (a first run after ``pip install``); the *warm*
runs that follow share its folder (every later run). ``overhead`` = cold - median warm of
import + build + fit + evaluate: what compilation adds to the first run. Pairs alternate,
``--pairs`` of them, so that load from other processes hits both alike; the table gives
medians.

    python bench/first_run.py                          # SGD (Nesterov) and Adam, 3 pairs each; writes bench/results/
    python bench/first_run.py --optimizers sgd --pairs 1 --no-save
    python bench/first_run.py --quick                  # smoke run (bench/test_first_run.py): tiny data, no files
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (784, 512, 512, 10)
BATCH = 128
#: The first run may add this much over a warm one (seconds, 784-512-512-10).
TARGET_S = 3.0
PHASES = ("import", "build", "fit", "evaluate")


def child(optimizer, samples):
    """One run in this process: {phase: seconds}, {function: compile seconds}, step path."""
    t0, c0 = time.perf_counter(), time.process_time()
    from numba.core import event

    compiles, stack = {}, []

    class Compiles(event.Listener):
        def on_start(self, ev):
            stack.append(time.perf_counter())

        def on_end(self, ev):
            started = stack.pop()
            if not stack:  # the outermost compile holds the nested ones
                name = ev.data["dispatcher"].py_func.__qualname__
                compiles[name] = compiles.get(name, 0.0) + time.perf_counter() - started

    event.register("numba:compile", Compiles())
    from numba.core import ccallback  # a C callback's compile sends no event: time its uncached compiles

    uncached = ccallback.CFunc._compile_uncached

    def timed_compile(self):
        stack.append(time.perf_counter())
        try:
            return uncached(self)
        finally:
            started = stack.pop()
            if not stack:
                compiles[self.__qualname__] = compiles.get(self.__qualname__, 0.0) + time.perf_counter() - started

    ccallback.CFunc._compile_uncached = timed_compile
    import numpy as np

    import tensornet as tn
    from tensornet.layers import Dense

    t1, c1 = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], samples)
    model = tn.Sequential(seed=0)
    for i, units in enumerate(SIZES[1:]):
        last = i == len(SIZES) - 2
        model.add(Dense(units, activation="softmax" if last else "relu",
                        **({"input_shape": (SIZES[0],)} if i == 0 else {})))
    rule = (tn.optimizers.SGD(0.05, momentum=0.9, nesterov=True) if optimizer == "sgd" else tn.optimizers.Adam())
    model.compile(optimizer=rule, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t2, c2 = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=BATCH, epochs=1, validation_split=0.1, verbose=0)
    t3, c3 = time.perf_counter(), time.process_time()
    model.evaluate(x[:1000], y[:1000], batch_size=BATCH, verbose=0)
    t4, c4 = time.perf_counter(), time.process_time()
    # a second epoch, for scale: what one epoch costs once everything is compiled
    model.fit(x, y, batch_size=BATCH, epochs=1, validation_split=0.1, verbose=0)
    t5 = time.perf_counter()
    return {"phases": dict(zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3))), "later_epoch": t5 - t4,
            "cpu": dict(zip(PHASES, (c1 - c0, c2 - c1, c3 - c2, c4 - c3))),
            "compiles": compiles, "step": model.step_path}


def run(optimizer, samples, cache):
    """A child process's report, with ``NUMBA_CACHE_DIR=cache``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", optimizer, "--samples", str(samples),
                   "--result-json", str(out)]
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the {optimizer} run failed in its child process:\n{done.stderr}")
        return json.loads(out.read_text())


def total(report, key="phases"):
    return sum(report[key].values())


def measure(optimizer, samples, pairs, warm_runs):
    """``pairs`` times: a cold run (new empty cache) then ``warm_runs`` warm ones on its cache."""
    cold, warm = [], []
    for _ in range(pairs):
        with tempfile.TemporaryDirectory(prefix="tensornet-first-run-") as cache:
            cold.append(run(optimizer, samples, cache))
            warm += [run(optimizer, samples, cache) for _ in range(warm_runs)]
    cold_s, warm_s = statistics.median(map(total, cold)), statistics.median(map(total, warm))
    compiles = {}
    for report in cold:
        for name, seconds in report["compiles"].items():
            compiles.setdefault(name, []).append(seconds)
    return {"optimizer": optimizer, "sizes": list(SIZES), "batch": BATCH, "samples": samples,
            "cold_s": cold_s, "warm_s": warm_s, "overhead_s": cold_s - warm_s,
            "overheads_s": [total(c) - warm_s for c in cold],
            "cpu_overhead_s": statistics.median(total(c, "cpu") for c in cold)
            - statistics.median(total(w, "cpu") for w in warm),
            "cold_phases_s": {p: statistics.median(c["phases"][p] for c in cold) for p in PHASES},
            "warm_phases_s": {p: statistics.median(w["phases"][p] for w in warm) for p in PHASES},
            "later_epoch_s": statistics.median(r["later_epoch"] for r in cold + warm),
            "cold_compile_s": {name: statistics.median(v) for name, v in
                               sorted(compiles.items(), key=lambda kv: -statistics.median(kv[1]))},
            "warm_compile_s": statistics.median(sum(w["compiles"].values()) for w in warm),
            "step": cold[0]["step"], "pairs": pairs, "warm_runs": len(warm)}


def format_result(res):
    cold, warm = res["cold_phases_s"], res["warm_phases_s"]
    lines = [f"{res['optimizer']:<5} overhead {res['overhead_s']:6.2f} s (cold {res['cold_s']:.2f} s, warm "
             f"{res['warm_s']:.2f} s; per pair {', '.join(f'{o:.2f}' for o in res['overheads_s'])}; target <= "
             f"{TARGET_S:.1f} s: {'met' if res['overhead_s'] <= TARGET_S else 'MISSED'}; in CPU time "
             f"{res['cpu_overhead_s']:.2f} s)",
             "      phase      cold      warm",
             *(f"      {p:<8} {cold[p]:6.2f} s  {warm[p]:6.2f} s" for p in PHASES),
             f"      a later epoch: {res['later_epoch_s']:.2f} s; step: {res['step']}",
             f"      compiling, cold: {sum(res['cold_compile_s'].values()):.2f} s in all, "
             + ", ".join(f"{name} {s:.2f}" for name, s in list(res["cold_compile_s"].items())[:6])
             + f"; warm: {res['warm_compile_s']:.2f} s"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--optimizers", default="sgd,adam", help="comma-separated: sgd (Nesterov), adam")
    parser.add_argument("--pairs", type=int, default=3, help="cold runs, each followed by its warm runs")
    parser.add_argument("--warm-runs", type=int, default=2, help="warm runs after each cold one")
    parser.add_argument("--samples", type=int, default=12800, help="training samples (random, 10 classes)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 pair, 1 warm run, 1,280 samples, no files")
    parser.add_argument("--name", default=None, help="results file stem (default: cpu-<cores>core-<date>-first-run)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--child", choices=("sgd", "adam"), help=argparse.SUPPRESS)
    parser.add_argument("--result-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        Path(args.result_json).write_text(json.dumps(child(args.child, args.samples)))
        return None
    if args.quick:
        args.pairs, args.warm_runs, args.samples = 1, 1, 1280
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from harness import command_line, machine_info, write_record

    info = machine_info("cpu")
    header = (f"# {info['cpu']}, {info['cores']} cores, Python {info['python']}, NumPy {info['numpy']}, "
              f"Numba {info['numba']}, tensornet BLAS: {info['tensornet_blas']}, load average before "
              f"{'/'.join(f'{v:.2f}' for v in info.get('load_average', ()))}")
    print(header, flush=True)
    results = []
    for optimizer in args.optimizers.split(","):
        results.append(measure(optimizer, args.samples, args.pairs, args.warm_runs))
        print(format_result(results[-1]), flush=True)
    footer = (f"784-512-512-10, batch {BATCH}, {args.samples:,} random samples, one epoch of fit (10 % validation, "
              "accuracy) and an evaluate; overhead = cold - median warm of import + build + fit + evaluate")
    print(footer)
    if not args.quick and not args.no_save:
        now = datetime.datetime.now()
        stem = args.name or f"cpu-{os.cpu_count()}core-{now:%Y-%m-%d}-first-run"
        info["load_average_after"] = os.getloadavg()
        command = command_line("first_run.py", argv)
        payload = {"when": f"{now:%Y%m%d-%H%M%S}", "machine": info, "results": results}
        write_record(stem, command, payload, header, *(format_result(r) for r in results), footer)
    return results


if __name__ == "__main__":
    main()
