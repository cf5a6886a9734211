"""bench/conv_patch_ops.py for one round against this checkout's HEAD (so that it cannot rot):
every op runs on both sides and gets its line, the direct convolution's included."""
import subprocess

import conv_patch_ops
import pytest


def test_one_round_times_every_op(capsys):
    try:
        subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: there is no baseline revision to load")
    assert conv_patch_ops.main(["--rounds", "1", "--baseline", "HEAD", "--serial"]) == 0
    lines = capsys.readouterr().out.splitlines()[2:]
    names = {" ".join(line.split()[:-5]) for line in lines}
    for op in ("im2col small conv1", "col2im mnist conv2", "maxpool bwd mnist pool", "bias grad small conv2",
               "direct fwd small conv1", "direct grads rgb conv1"):
        assert op in names
    assert all(float(line.split()[-4]) > 0 for line in lines)
