"""bench/compare_cnn.py (so that it cannot rot): the two PyTorch networks hold tensornet's
weights (the same predictions before training, the Dense kernel's rows permuted to PyTorch's
flattening order), and one case runs end to end on a few batches."""
import numpy as np
import pytest
import torch

import compare_cnn


@pytest.mark.parametrize("name", list(compare_cnn.CASES))
def test_the_torch_network_is_the_same_network(name):
    model = compare_cnn.build_tensornet(name, seed=3)
    net, _ = compare_cnn.build_torch(name, model)
    net.eval()
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    with torch.no_grad():
        theirs = torch.softmax(net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))), 1).numpy()
    np.testing.assert_allclose(model.predict(x, verbose=0), theirs, rtol=1e-4, atol=1e-6)


def test_a_case_runs_on_a_few_batches(monkeypatch):
    rng = np.random.default_rng(1)
    images = rng.random((512, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 512)
    monkeypatch.setattr(compare_cnn, "load_images", lambda samples: (images[0][:samples], images[1][:samples]))
    result = compare_cnn.run_cnn_case("cnn-small", samples=384, epochs=2, warmup=1, profile_steps=2)
    assert result["samples"] == 384 and len(result["epoch_s"]["tensornet"]) == 2
    assert result["max_prediction_diff_at_start"] < 1e-5
    assert 0.0 < result["share_gemm_conv"]["tensornet"] <= 1.0 and 0.0 < result["share_gemm_conv"]["torch"] <= 1.0
    assert result["ratio_vs_torch"] > 0
