"""bench/first_run.py in quick mode (so that it cannot rot): a cold run compiles, the warm run
after it on the same cache compiles nothing."""
import first_run


def test_quick_cold_and_warm_runs():
    result, = first_run.main(["--quick", "--optimizers", "sgd"])
    assert result["pairs"] == 1 and result["warm_runs"] == 1
    assert set(result["cold_phases_s"]) == set(result["warm_phases_s"]) == set(first_run.PHASES)
    assert all(seconds > 0 for seconds in result["cold_phases_s"].values())
    assert sum(result["cold_compile_s"].values()) > 0  # an empty cache: Numba compiled
    assert result["warm_compile_s"] == 0  # the same cache, filled: nothing compiled
    assert result["step"].startswith(("compiled", "layered"))
