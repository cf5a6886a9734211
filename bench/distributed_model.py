"""Step time against K on paper, from this machine's measured record (bench/distributed_step.py):

    python bench/distributed_model.py [bench/results/cpu-2core-2026-12-03-distributed.jsonl]

T(K) = C / K + A(K): C the measured compute of one step on the whole global batch (K = 1), split
evenly; A(K) the ring all-reduce of S gradient bytes, A(K) = 2 (K - 1) / K * S / bw + 2 (K - 1) * lat,
with ``bw`` the link's bandwidth and ``lat`` its per-message latency. With the bucketed overlap the
step is max(C / K, A(K)) plus the last bucket's share. Communication dominates where A(K) > C / K.
Prints the tables docs/distributed.md quotes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

LINKS = {  # name: (bytes per second, latency in seconds)
    "NVLink (8 GPUs in one box, ~300 GB/s bus bandwidth)": (300e9, 5e-6),
    "400 Gb/s between nodes": (50e9, 5e-6),
    "200 Gb/s between nodes": (25e9, 5e-6),
    "100 Gb/s between nodes": (12.5e9, 5e-6),
}


def allreduce(size, k, bandwidth, latency):
    return 0.0 if k == 1 else 2 * (k - 1) / k * size / bandwidth + 2 * (k - 1) * latency


def main(path):
    records = {r["K"]: r for r in map(json.loads, Path(path).read_text().splitlines())}
    one = records[1]
    compute, size = one["compute_s"], one["gradient_bytes"]
    print(f"measured: C = {compute * 1e3:.2f} ms per step of {one['global_batch']} examples at K = 1; "
          f"S = {size / 1e6:.2f} MB")
    if 2 in records:
        two = records[2]
        print(f"measured at K = 2: compute {two['compute_s'] * 1e3:.2f} ms, all-reduce {two['allreduce_s'] * 1e3:.2f} ms, "
              f"step {two['step_one_call_s'] * 1e3:.2f} ms (one call), {two['step_overlap_s'] * 1e3:.2f} ms (overlap)")
    for gpu_scale, label in ((1.0, "compute as measured on this CPU"), (1 / 100, "compute 100x faster (a GPU)")):
        print(f"\n{label}: C = {compute * gpu_scale * 1e3:.3f} ms")
        print("| link | " + " | ".join(f"K={k}" for k in (2, 4, 8, 16)) + " | communication dominates from |")
        print("|---|" + "---|" * 5)
        for name, (bandwidth, latency) in LINKS.items():
            cells, crossing = [], None
            most = 8 if name.startswith("NVLink") else 16
            for k in range(2, most + 1):
                a, c = allreduce(size, k, bandwidth, latency), compute * gpu_scale / k
                if crossing is None and a > c:
                    crossing = k
            for k in (2, 4, 8, 16):
                if k > most:
                    cells.append("n/a")
                    continue
                a, c = allreduce(size, k, bandwidth, latency), compute * gpu_scale / k
                cells.append(f"{(c + a) * 1e3:.3f} ms ({a / (c + a):.0%} comm)")
            print(f"| {name} | " + " | ".join(cells) + f" | {'K=' + str(crossing) if crossing else f'beyond {most}'} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "cpu-2core-2026-12-03-distributed.jsonl")
