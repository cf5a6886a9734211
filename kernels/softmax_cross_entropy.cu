// softmax_cross_entropy.cu -- fused softmax + categorical cross-entropy on an output layer:
// the batch loss sum (and, optionally, the number of correct predictions) and the gradient
// with respect to the logits, in one launch.
//
// Loaded at run time by tensornet/backend/kernels.py: the file is read as text into
// cupy.RawModule(code=..., options=("-std=c++17", "--fmad=false"), name_expressions=[...]),
// with the name expressions `softmax_cross_entropy<T>` (one-hot / soft float targets),
// `sparse_softmax_cross_entropy<T, L>` (integer labels) and `bias_activation_softmax<T>` (the
// output layer's forward pass, below), T in {float, double}, L in {int, long long}.
//
// Compile check (every kernel, float and double; tests/test_kernels_compile.py runs it):
//   nvcc -std=c++17 --fmad=false -arch=sm_80 -DTENSORNET_NVCC_CHECK -c kernels/softmax_cross_entropy.cu -o /dev/null
//   nvcc -std=c++17 --fmad=false -arch=sm_90 -DTENSORNET_NVCC_CHECK -c kernels/softmax_cross_entropy.cu -o /dev/null
//
// For each row r of the (rows, cols) logits x, probabilities p = softmax(x) (computed by the
// forward pass), targets t (or label l), N = rows and inv_n = 1 / N:
//   M = max_j x_j,  S = sum_j exp(x_j - M)           (online: one pass, rescaling S when M grows)
//   loss_r = -sum_j t_j ((x_j - M) - log S)           dense   (log-sum-exp form, no clip)
//   loss_r = -((x_l - M) - log S)                     sparse
//   grad_j = (p_j sum_k t_k - t_j) inv_n              dense
//   grad_j = (p_j - 1[j == l]) inv_n                  sparse
//   correct_r = argmax_j p_j == argmax_j t_j (dense) or == l (sparse); first index on ties, NaN
//               counts as the largest value (numpy.argmax)
// A label outside [0, cols) makes that row's loss and gradient NaN (no host check, no sync).
// grad may alias probs or logits (each element is read before it is written, by one thread).
//
// Layout: one warp per row (grid-stride over rows), lanes stride over the columns, warp-shuffle
// reductions. Elementwise arithmetic is in T; row losses are accumulated in double. Each block
// writes its partial sums to partial_loss / partial_correct[blockIdx.x]; the last block to
// finish (atomic ticket on done_counter, after __threadfence) adds the partials in a fixed
// order, writes *loss_out (as T) and *correct_out, and resets *done_counter to 0 for the next
// launch. The result is therefore deterministic (no floating-point atomics). done_counter must
// be 0 before the first launch; partial buffers hold gridDim.x entries.

template <typename T> struct Math;
template <> struct Math<float> {
    static __device__ __forceinline__ float exp(float x) { return expf(x); }
    static __device__ __forceinline__ float log(float x) { return logf(x); }
    static __device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }
    static __device__ __forceinline__ float nan() { return __int_as_float(0x7fffffff); }
};
template <> struct Math<double> {
    static __device__ __forceinline__ double exp(double x) { return ::exp(x); }
    static __device__ __forceinline__ double log(double x) { return ::log(x); }
    static __device__ __forceinline__ double neg_inf() { return __longlong_as_double(0xfff0000000000000ULL); }
    static __device__ __forceinline__ double nan() { return __longlong_as_double(0x7fffffffffffffffULL); }
};

#define TN_FULL_MASK 0xffffffffu
#define TN_NO_INDEX 0x7fffffffffffffffLL

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(TN_FULL_MASK, v, offset);
    return v;
}

// exp(a - b) for b = max(a, ...): 1 when equal (also when both are -inf, where a - b is NaN).
template <typename T>
__device__ __forceinline__ T rescale(T a, T b) {
    return a == b ? T(1) : Math<T>::exp(a - b);
}

// Online log-sum-exp state of one lane: adds x to (m, s) with s = sum exp(x_k - m).
template <typename T>
__device__ __forceinline__ void lse_push(T& m, T& s, T x) {
    if (x > m) {
        s = s * rescale(m, x) + T(1);
        m = x;
    } else if (x != Math<T>::neg_inf()) {  // x <= m, or x is NaN (then s becomes NaN)
        s += Math<T>::exp(x - m);
    }
}

template <typename T>
__device__ __forceinline__ void lse_warp_reduce(T& m, T& s) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        const T m2 = __shfl_xor_sync(TN_FULL_MASK, m, offset);
        const T s2 = __shfl_xor_sync(TN_FULL_MASK, s, offset);
        const T mm = (m2 > m) ? m2 : m;
        s = s * rescale(m, mm) + s2 * rescale(m2, mm);
        m = mm;
    }
}

// Is (a, ia) before (b, ib) in numpy.argmax order: NaN first, then larger value, then lower index.
template <typename T>
__device__ __forceinline__ bool arg_before(T a, long long ia, T b, long long ib) {
    const bool a_nan = a != a, b_nan = b != b;
    if (a_nan || b_nan) return (a_nan && b_nan) ? ia < ib : a_nan;
    if (a != b) return a > b;
    return ia < ib;
}

template <typename T>
__device__ __forceinline__ void arg_push(T& best, long long& best_index, T v, long long index) {
    if (arg_before(v, index, best, best_index)) {
        best = v;
        best_index = index;
    }
}

template <typename T>
__device__ __forceinline__ void argmax_warp_reduce(T& best, long long& best_index) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        const T v = __shfl_xor_sync(TN_FULL_MASK, best, offset);
        const long long index = __shfl_xor_sync(TN_FULL_MASK, best_index, offset);
        arg_push(best, best_index, v, index);
    }
}

// Block-wide sum of the per-warp totals in a fixed order, then the grid-wide sum by the last
// block to finish. Called by every thread of the block once its rows are done.
template <typename T>
__device__ __forceinline__ void finish_sums(double warp_loss, long long warp_correct,
                                            double* partial_loss, long long* partial_correct,
                                            unsigned int* done_counter,
                                            T* loss_out, long long* correct_out) {
    __shared__ double block_loss[32];
    __shared__ long long block_correct[32];
    __shared__ bool is_last;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    if (lane == 0) {
        block_loss[warp] = warp_loss;
        block_correct[warp] = warp_correct;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        long long correct = 0;
        for (int k = 0; k < warps; ++k) {
            total += block_loss[k];
            correct += block_correct[k];
        }
        partial_loss[blockIdx.x] = total;
        partial_correct[blockIdx.x] = correct;
        __threadfence();
        const unsigned int ticket = atomicAdd(done_counter, 1u);
        is_last = (ticket == gridDim.x - 1);
    }
    __syncthreads();
    if (is_last && warp == 0) {
        __threadfence();
        const volatile double* losses = partial_loss;
        const volatile long long* corrects = partial_correct;
        double total = 0.0;
        long long correct = 0;
        for (long long b = lane; b < gridDim.x; b += 32) {
            total += losses[b];
            correct += corrects[b];
        }
        total = warp_sum(total);
        correct = warp_sum(correct);
        if (lane == 0) {
            *loss_out = T(total);
            *correct_out = correct;
            *done_counter = 0u;
        }
    }
}

// ---------------------------------------------------------------- dense (one-hot / soft) targets
template <typename T>
__global__ void softmax_cross_entropy(long long rows, long long cols,
                                      const T* logits, const T* probs, const T* target, T* grad,
                                      T inv_n, int count_correct,
                                      double* partial_loss, long long* partial_correct,
                                      unsigned int* done_counter,
                                      T* loss_out, long long* correct_out) {
    const int lane = threadIdx.x & 31;
    const long long warps = blockDim.x >> 5;
    double warp_loss = 0.0;
    long long warp_correct = 0;
    for (long long r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += gridDim.x * warps) {
        const T* x = logits + r * cols;
        const T* p = probs + r * cols;
        const T* t = target + r * cols;
        T* dx = grad + r * cols;
        // pass 1: max and sum of exponentials (online), sum of targets, argmax of the targets
        T m = Math<T>::neg_inf(), s = T(0), t_sum = T(0);
        T t_best = Math<T>::neg_inf();
        long long t_index = TN_NO_INDEX;
        for (long long c = lane; c < cols; c += 32) {
            lse_push(m, s, x[c]);
            const T tc = t[c];
            t_sum += tc;
            if (count_correct) arg_push(t_best, t_index, tc, c);
        }
        lse_warp_reduce(m, s);
        t_sum = warp_sum(t_sum);
        const T log_s = Math<T>::log(s);
        // pass 2: loss terms and gradient, argmax of the probabilities
        T loss = T(0);
        T p_best = Math<T>::neg_inf();
        long long p_index = TN_NO_INDEX;
        for (long long c = lane; c < cols; c += 32) {
            const T tc = t[c];
            loss += tc * ((x[c] - m) - log_s);
            const T pc = p[c];
            if (count_correct) arg_push(p_best, p_index, pc, c);
            dx[c] = (pc * t_sum - tc) * inv_n;
        }
        loss = warp_sum(loss);
        if (count_correct) {
            argmax_warp_reduce(t_best, t_index);
            argmax_warp_reduce(p_best, p_index);
        }
        if (lane == 0) {
            warp_loss += double(-loss);
            warp_correct += (count_correct && p_index == t_index) ? 1 : 0;
        }
    }
    finish_sums<T>(warp_loss, warp_correct, partial_loss, partial_correct, done_counter,
                   loss_out, correct_out);
}

// ---------------------------------------------------------------- integer labels
template <typename T, typename L>
__global__ void sparse_softmax_cross_entropy(long long rows, long long cols,
                                             const T* logits, const T* probs, const L* labels,
                                             T* grad, T inv_n, int count_correct,
                                             double* partial_loss, long long* partial_correct,
                                             unsigned int* done_counter,
                                             T* loss_out, long long* correct_out) {
    const int lane = threadIdx.x & 31;
    const long long warps = blockDim.x >> 5;
    double warp_loss = 0.0;
    long long warp_correct = 0;
    for (long long r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += gridDim.x * warps) {
        const T* x = logits + r * cols;
        const T* p = probs + r * cols;
        T* dx = grad + r * cols;
        const long long label = (long long)labels[r];
        const bool valid = label >= 0 && label < cols;
        const T x_label = valid ? x[label] : T(0);  // read before grad (which may alias) is written
        // pass 1: max and sum of exponentials (online)
        T m = Math<T>::neg_inf(), s = T(0);
        for (long long c = lane; c < cols; c += 32) lse_push(m, s, x[c]);
        lse_warp_reduce(m, s);
        // pass 2: gradient, argmax of the probabilities
        T p_best = Math<T>::neg_inf();
        long long p_index = TN_NO_INDEX;
        for (long long c = lane; c < cols; c += 32) {
            const T pc = p[c];
            if (count_correct) arg_push(p_best, p_index, pc, c);
            dx[c] = valid ? (pc - T(c == label ? 1 : 0)) * inv_n : Math<T>::nan();
        }
        if (count_correct) argmax_warp_reduce(p_best, p_index);
        if (lane == 0) {
            const T loss = valid ? -((x_label - m) - Math<T>::log(s)) : Math<T>::nan();
            warp_loss += double(loss);
            warp_correct += (count_correct && p_index == label) ? 1 : 0;
        }
    }
    finish_sums<T>(warp_loss, warp_correct, partial_loss, partial_correct, done_counter,
                   loss_out, correct_out);
}

// ---------------------------------------------------------------- forward: bias + softmax
// Backend.bias_activation(z, bias, "softmax", out) for (rows, cols) z in one launch, in the
// reference's order of operations (ActivationOps.bias_activation, then ActivationOps.softmax):
//   z_j += b_j                         (in place)
//   m = max_j z_j                      (NaN if the row holds one, as numpy.max)
//   out_j = exp(z_j - m),  s = sum_j out_j   (s accumulated in double, then rounded to T)
//   out_j = out_j / s
// One warp per row (grid-stride over rows), lanes stride over the columns, warp-shuffle max and
// sum; every element is read and written by the same lane, so out may alias z.
template <typename T>
__global__ void bias_activation_softmax(long long rows, long long cols, T* z, const T* bias, T* out) {
    const int lane = threadIdx.x & 31;
    const long long warps = blockDim.x >> 5;
    for (long long r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += gridDim.x * warps) {
        T* x = z + r * cols;
        T* y = out + r * cols;
        T m = Math<T>::neg_inf();
        for (long long c = lane; c < cols; c += 32) {
            const T v = x[c] + bias[c];
            x[c] = v;
            if (v > m || v != v) m = v;
        }
        for (int offset = 16; offset > 0; offset >>= 1) {
            const T other = __shfl_xor_sync(TN_FULL_MASK, m, offset);
            if (other > m || other != other) m = other;
        }
        double s = 0.0;
        for (long long c = lane; c < cols; c += 32) {
            const T e = Math<T>::exp(x[c] - m);
            y[c] = e;
            s += double(e);
        }
        const T total = T(warp_sum(s));
        for (long long c = lane; c < cols; c += 32) y[c] = y[c] / total;
    }
}

#ifdef TENSORNET_NVCC_CHECK
// Explicit instantiation of every name expression tensornet/backend/kernels.py declares, so
// that an offline nvcc build compiles each kernel (at run time NVRTC instantiates them).
const void* tensornet_softmax_cross_entropy_check[] = {
    (const void*)&softmax_cross_entropy<float>,
    (const void*)&softmax_cross_entropy<double>,
    (const void*)&sparse_softmax_cross_entropy<float, int>,
    (const void*)&sparse_softmax_cross_entropy<float, long long>,
    (const void*)&sparse_softmax_cross_entropy<double, int>,
    (const void*)&sparse_softmax_cross_entropy<double, long long>,
    (const void*)&bias_activation_softmax<float>,
    (const void*)&bias_activation_softmax<double>,
};
#endif
