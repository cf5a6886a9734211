// faulty_kernels.cu -- deliberately wrong kernels (test-only) that the harness must catch, and
// their correct twins, run by tests/test_kernels_on_cpu_harness.py.

// Writes out[0..n] inclusive: one element past the end (the `i <= n` bug).
__global__ void write_past_end(long long n, float* out) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i <= n; i += stride) out[i] = 1.0f;
}

// Reads in[-1] (thread 0): one element before the start.
__global__ void read_before_start(long long n, const double* in, double* out) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i - 1];
}

// Block sum in shared memory; WITH_SYNC selects whether thread 0 waits for the others' writes.
template <int WITH_SYNC>
__global__ void block_sum(const float* in, float* out) {
    __shared__ float values[1024];
    values[threadIdx.x] = in[blockIdx.x * blockDim.x + threadIdx.x];
    if (WITH_SYNC) __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (unsigned k = 0; k < blockDim.x; ++k) s += values[k];
        out[blockIdx.x] = s;
    }
}

// Which block took the last ticket (the last-block-reduces pattern's test of block order).
__global__ void last_block(unsigned int* counter, unsigned int* last) {
    __shared__ bool is_last;
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        is_last = atomicAdd(counter, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (is_last && threadIdx.x == 0) *last = blockIdx.x;
}

// __syncthreads inside a branch only thread 0 takes: a deadlock on the GPU.
__global__ void divergent_barrier(float* out) {
    if (threadIdx.x == 0) __syncthreads();
    out[threadIdx.x] = 1.0f;
}

// Warp primitives: lane-wise results of a shuffle-down, shuffle, ballot and any.
__global__ void warp_ops(int* down, int* from_lane_5, unsigned* ballot, int* any_odd) {
    const int lane = threadIdx.x & 31;
    down[threadIdx.x] = __shfl_down_sync(0xffffffffu, (int)threadIdx.x, 3);
    from_lane_5[threadIdx.x] = __shfl_sync(0xffffffffu, (int)threadIdx.x * 10, 5);
    ballot[threadIdx.x] = __ballot_sync(0xffffffffu, lane % 3 == 0);
    any_odd[threadIdx.x] = __any_sync(0xffffffffu, threadIdx.x == 40);
}

// atomicAdd on a float from every thread of every block.
__global__ void float_total(float* total) { atomicAdd(total, 1.0f); }

// Writes out[-1] (thread 0): one element before the start.
__global__ void write_before_start(long long n, float* out) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i - 1] = 2.0f;
}

// Thread 0 publishes a value in shared memory; WITH_SYNC selects whether the others wait for it.
template <int WITH_SYNC>
__global__ void broadcast(int* out) {
    __shared__ int value;
    if (threadIdx.x == 0) value = 7;
    if (WITH_SYNC) __syncthreads();
    out[threadIdx.x] = value;
    if (WITH_SYNC) __syncthreads();
    if (threadIdx.x == 0) value = 0;
}
