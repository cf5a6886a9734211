"""``tensornet info``: what a bug report needs, one line each -- tensornet, Python, the platform,
NumPy, Numba, NumPy's BLAS, MKL, CuPy, CUDA, the backend and why it was chosen, the CPU threads,
the device -- and with ``--check`` every kernel of the backend against its reference."""
from __future__ import annotations

import importlib.util
import os
import platform
import sys


def blas_line() -> str:
    """NumPy's BLAS by its own name and version (threadpoolctl reads them from the loaded library),
    with the build NumPy reports and its thread count."""
    import numpy

    from ..backend.blas_library import numpy_blas_controller

    build = numpy.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    built = f"{build.get('name', '?')} {build.get('version', '')}".strip()
    controller = numpy_blas_controller()
    if controller is None:
        return f"blas: {built} (NumPy's build; threadpoolctl cannot read the loaded library)"
    names = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "flexiblas": "FlexiBLAS"}
    name = names.get(controller.internal_api, controller.internal_api)
    layer = getattr(controller, "threading_layer", None)
    return (f"blas: {name} {controller.version or '?'} (NumPy's {built}, {layer} threading, "
            f"{controller.num_threads} threads)")


def cuda_lines():
    """The CuPy line and the CUDA line: versions, or "not installed" / why CuPy cannot run."""
    from ..backend import cupy_status

    if importlib.util.find_spec("cupy") is None:
        return ["cupy: not installed (for an NVIDIA GPU: python -m pip install 'tensornet[cuda12]' or "
                "'tensornet[cuda13]')", "cuda: not used (CuPy is not installed)"]
    usable, reason = cupy_status()
    try:
        import cupy

        runtime = cupy.cuda.runtime
    except Exception as exc:  # a broken CUDA install can raise anything on import
        return [f"cupy: installed but does not import ({exc.__class__.__name__}: {exc})", "cuda: unknown"]
    lines = [f"cupy {cupy.__version__} ({'usable' if usable else 'not usable'}: {reason})"]
    parts = []
    for label, read in (("runtime", runtime.runtimeGetVersion), ("driver", runtime.driverGetVersion)):
        try:
            number = int(read())
            parts.append(f"{label} {number // 1000}.{number % 1000 // 10}")
        except Exception as exc:
            parts.append(f"{label} unavailable ({exc.__class__.__name__})")
    lines.append("cuda: " + ", ".join(parts))
    return lines


def backend_choice(name):
    """``(backend name, why)``: the backend ``name`` (or the environment) selects and the reason."""
    from ..backend import cupy_status
    from ..backend.selection import ENV_VAR, resolve_name

    env = os.environ.get(ENV_VAR)
    source = f"--backend {name}" if name else (f"{ENV_VAR}={env}" if env else None)
    chosen = resolve_name(name)
    if (name or env or "auto").lower() != "auto":
        return chosen, f"chosen by {source}"
    usable, reason = cupy_status()
    if usable:
        why = f"CuPy runs here: {reason}"
    elif importlib.util.find_spec("cupy") is None:
        why = "CuPy is not installed"
    else:
        why = f"CuPy cannot run here: {reason}"
    return chosen, f"{source or 'auto (the default)'}{' = auto' if source else ''}: {why}"


def environment_lines():
    """The lines that name the software: tensornet, Python, platform, NumPy, Numba, BLAS, MKL."""
    import numpy

    from .. import __file__ as package_file
    from ..backend.fast_path import mkl_status, numba_status
    from ..version import __version__

    lines = [f"tensornet {__version__} ({os.path.dirname(package_file)})",
             f"python {platform.python_version()} ({sys.executable})",
             f"platform {platform.platform()} ({platform.machine()})",
             f"numpy {numpy.__version__}"]
    numba_version, problem, command = numba_status()
    lines.append(f"numba {numba_version}" if numba_version else
                 f"numba: {problem} ({command} gets the compiled CPU kernels)")
    lines.append(blas_line())
    mkl_version, note = mkl_status()
    lines.append(f"mkl {mkl_version} ({note})" if mkl_version else f"mkl: {note}")
    return lines


def thread_line(backend) -> str:
    """The CPU threads and how a training loop shares them between the products and the kernels."""
    cores = os.cpu_count()
    if backend.name != "numpy":
        return f"cpu threads: {cores} cores (the {backend.name} backend computes on its device)"
    from ..backend import shared_pool
    from ..backend.blas_library import numpy_blas_controller

    if backend.accelerator != "numba":
        return f"cpu threads: {cores} cores; NumPy's BLAS on its own threads, no compiled kernels"
    return f"cpu threads: {cores} cores; {shared_pool.describe(numpy_blas_controller())}"


def info(backend_name=None, check=False) -> int:
    """Print the lines above, then the device's; with ``check``, each kernel's self-check line and
    a summary (:mod:`tensornet.backend.self_check`). Returns the exit status."""
    from ..backend import get_backend

    for line in environment_lines() + cuda_lines():
        print(line)
    chosen, why = backend_choice(backend_name)
    backend = get_backend(backend_name)
    print(f"backend: {chosen} ({why})")
    print(thread_line(backend))
    shown = ("numpy", "blas", "cores", "cpu_threads", "cupy")
    device = {key: value for key, value in backend.device_info().items() if key not in shown}
    name = device.pop("device", backend.name)
    print(f"device: {name}" + "".join(f", {key} {value}" for key, value in device.items()))
    if not check:
        return 0
    from ..backend.self_check import check_backend

    results = check_backend(backend)
    for result in results:
        print(f"{'PASS' if result.passed else 'FAIL'} {result.name} ({result.detail})")
    failed = [r.name for r in results if not r.passed]
    print(f"check: {len(results) - len(failed)} of {len(results)} kernel checks pass on the {backend.name} backend"
          + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
