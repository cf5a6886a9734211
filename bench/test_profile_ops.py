"""bench/profile_ops.py on a few steps (so that it cannot rot): every case builds, and the
operations a step must call are timed and printed."""
import pytest

import profile_ops


@pytest.mark.parametrize("case, must", [("mlp-512-bn-dropout", ("batch_norm_forward", "dropout_forward", "sgd_update")),
                                        ("cnn-small", ("conv2d", "max_pool2d", "sgd_update"))])
def test_a_few_steps_print_the_step_and_its_operations(capsys, case, must):
    profile_ops.main([case, "--steps", "2", "--warmup", "1", "--top", "60"])
    out = capsys.readouterr().out
    assert f"{case}, batch" in out and "ms per step" in out
    for name in must:
        assert f"  {name} " in out, (name, out)


def test_an_unknown_case_is_refused_with_the_list():
    with pytest.raises(SystemExit, match="unknown case 'mlp-1'; the cases are mlp-512"):
        profile_ops.main(["mlp-1"])
