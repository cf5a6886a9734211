// optimizers.cu -- one fused, in-place update kernel per optimizer, over a model's whole flat
// parameter buffer: each element's parameter, gradient and state are read once and written once.
// Grid-stride loops with 64-bit indices.
//
// Loaded at run time by tensornet/backend/kernels.py: the file is read as text into
// cupy.RawModule(code=..., options=("-std=c++17", "--fmad=false"), name_expressions=[...]),
// with the name expressions `<optimizer>_update<T>`, T in {float, double}; arithmetic in T.
//
// Compile check (every kernel, float and double; tests/test_kernels_compile.py runs it):
//   nvcc -std=c++17 --fmad=false -arch=sm_80 -DTENSORNET_NVCC_CHECK -c kernels/optimizers.cu -o /dev/null
//   nvcc -std=c++17 --fmad=false -arch=sm_90 -DTENSORNET_NVCC_CHECK -c kernels/optimizers.cu -o /dev/null
//
// The formulas are those of the Backend.*_update docstrings (tensornet/backend/base.py), with
// the operations in the same order and --fmad=false, so a kernel rounds like the NumPy
// reference. Scalars that depend only on the step (Adam's alpha, Nadam's coefficients, ...)
// are computed on the host in double, as the reference does, and passed converted to T.
// Pointers to optional state (velocity, mean_grad, v_max) are never read when the flag that
// enables them is 0; the caller passes any valid pointer there.
//
//   sgd_update:      g' = g + wd w (when use_wd);  s = lr g'
//                    no momentum: w -= s
//                    momentum:    v = momentum v - s (0 when |v| < the smallest normal float);
//                                 w += v,  or Nesterov: w = (w - s) + momentum v
//   rmsprop_update:  ms = rho ms + (1 - rho) g^2;  mg = rho mg + (1 - rho) g (centered);
//                    inc = lr g / sqrt(ms - mg^2 + eps)  (mg = 0 when not centered);
//                    momentum: v = momentum v + inc, w -= v;  otherwise w -= inc
//   adagrad_update:  acc += g^2;  w -= lr g / sqrt(acc + eps)
//   adadelta_update: Eg = rho Eg + (1 - rho) g^2;  d = sqrt(Edx + eps) / sqrt(Eg + eps) g;
//                    Edx = rho Edx + (1 - rho) d^2;  w -= lr d
//   adam_update:     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//                    (amsgrad: v_max = max(v_max, v), used in place of v below)
//                    w -= alpha m / (sqrt(v) + eps),   alpha = lr sqrt(1 - b2^(t+1)) / (1 - b1^(t+1))
//   adamax_update:   m = b1 m + (1 - b1) g;  u = max(b2 u, |g|);  w -= c m / (u + eps),
//                    c = lr / (1 - b1^(t+1))
//   nadam_update:    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//                    m_hat = c1 m + c2 g,  c1 = mu_{t+1} / (1 - mu_prod mu_{t+1}),  c2 = (1 - mu_t) / (1 - mu_prod);
//                    v_hat = v / (1 - b2^(t+1));  w -= lr m_hat / (sqrt(v_hat) + eps)
//
// Templates have C++ linkage; each kernel's per-element body is a __host__ __device__
// function (`*_element`) so that a host build can check the formulas without a GPU.

#include "common.cuh"

// ---------------------------------------------------------------- per-element bodies
template <typename T>
__host__ __device__ __forceinline__ void sgd_update_element(
        long long i, T* w, const T* g, T* velocity,
        T lr, T momentum, T weight_decay, int use_momentum, int nesterov, int use_weight_decay) {
    const T wi = w[i];
    T gi = g[i];
    if (use_weight_decay) gi = wi * weight_decay + gi;
    const T s = gi * lr;
    if (!use_momentum) {
        w[i] = wi - s;
        return;
    }
    T v = velocity[i] * momentum - s;
    if (Math<T>::abs(v) < Math<T>::tiny()) v = T(0);  // no subnormal velocity (as the reference)
    velocity[i] = v;
    w[i] = nesterov ? (wi - s) + momentum * v : wi + v;
}

template <typename T>
__host__ __device__ __forceinline__ void rmsprop_update_element(
        long long i, T* w, const T* g, T* mean_square, T* mean_grad, T* velocity,
        T lr, T rho, T one_minus_rho, T epsilon, T momentum, int centered, int use_momentum) {
    const T gi = g[i];
    const T ms = mean_square[i] * rho + (one_minus_rho * gi) * gi;
    mean_square[i] = ms;
    T denom;
    if (centered) {
        const T mg = mean_grad[i] * rho + one_minus_rho * gi;
        mean_grad[i] = mg;
        denom = ms - mg * mg;
    } else {
        denom = ms;
    }
    denom = Math<T>::sqrt(denom + epsilon);
    const T increment = (lr * gi) / denom;
    if (use_momentum) {
        const T v = velocity[i] * momentum + increment;
        velocity[i] = v;
        w[i] = w[i] - v;
    } else {
        w[i] = w[i] - increment;
    }
}

template <typename T>
__host__ __device__ __forceinline__ void adagrad_update_element(
        long long i, T* w, const T* g, T* accumulator, T lr, T epsilon) {
    const T gi = g[i];
    const T acc = accumulator[i] + gi * gi;
    accumulator[i] = acc;
    w[i] = w[i] - (lr * gi) / Math<T>::sqrt(acc + epsilon);
}

template <typename T>
__host__ __device__ __forceinline__ void adadelta_update_element(
        long long i, T* w, const T* g, T* accum_grad, T* accum_delta,
        T lr, T rho, T one_minus_rho, T epsilon) {
    const T gi = g[i];
    const T eg = accum_grad[i] * rho + (one_minus_rho * gi) * gi;
    accum_grad[i] = eg;
    const T edx = accum_delta[i];
    const T delta = (Math<T>::sqrt(edx + epsilon) / Math<T>::sqrt(eg + epsilon)) * gi;
    accum_delta[i] = edx * rho + (one_minus_rho * delta) * delta;
    w[i] = w[i] - lr * delta;
}

template <typename T>
__host__ __device__ __forceinline__ void adam_update_element(
        long long i, T* w, const T* g, T* m, T* v, T* v_max,
        T alpha, T beta_1, T one_minus_beta_1, T beta_2, T one_minus_beta_2, T epsilon,
        int amsgrad) {
    const T gi = g[i];
    const T mi = m[i] * beta_1 + one_minus_beta_1 * gi;
    m[i] = mi;
    T vi = v[i] * beta_2 + (one_minus_beta_2 * gi) * gi;
    v[i] = vi;
    if (amsgrad) {
        vi = nan_max(v_max[i], vi);
        v_max[i] = vi;
    }
    w[i] = w[i] - (alpha * mi) / (Math<T>::sqrt(vi) + epsilon);
}

template <typename T>
__host__ __device__ __forceinline__ void adamax_update_element(
        long long i, T* w, const T* g, T* m, T* u,
        T lr_corrected, T beta_1, T one_minus_beta_1, T beta_2, T epsilon) {
    const T gi = g[i];
    const T mi = m[i] * beta_1 + one_minus_beta_1 * gi;
    m[i] = mi;
    const T ui = nan_max(u[i] * beta_2, Math<T>::abs(gi));
    u[i] = ui;
    w[i] = w[i] - (lr_corrected * mi) / (ui + epsilon);
}

template <typename T>
__host__ __device__ __forceinline__ void nadam_update_element(
        long long i, T* w, const T* g, T* m, T* v,
        T lr, T beta_1, T one_minus_beta_1, T beta_2, T one_minus_beta_2, T epsilon,
        T m_coef, T g_coef, T v_correction) {
    const T gi = g[i];
    const T mi = m[i] * beta_1 + one_minus_beta_1 * gi;
    m[i] = mi;
    const T vi = v[i] * beta_2 + (one_minus_beta_2 * gi) * gi;
    v[i] = vi;
    const T m_hat = m_coef * mi + g_coef * gi;
    const T v_hat = vi / v_correction;
    w[i] = w[i] - (lr * m_hat) / (Math<T>::sqrt(v_hat) + epsilon);
}

// ---------------------------------------------------------------- kernels
#define TN_GRID_STRIDE(i, n)                                                       \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x,          \
                   tn_stride_ = (long long)blockDim.x * gridDim.x;                \
         i < (n); i += tn_stride_)

template <typename T>
__global__ void sgd_update(long long n, T* w, const T* g, T* velocity,
                           T lr, T momentum, T weight_decay,
                           int use_momentum, int nesterov, int use_weight_decay) {
    TN_GRID_STRIDE(i, n) {
        sgd_update_element<T>(i, w, g, velocity, lr, momentum, weight_decay,
                              use_momentum, nesterov, use_weight_decay);
    }
}

template <typename T>
__global__ void rmsprop_update(long long n, T* w, const T* g, T* mean_square, T* mean_grad,
                               T* velocity, T lr, T rho, T one_minus_rho, T epsilon, T momentum,
                               int centered, int use_momentum) {
    TN_GRID_STRIDE(i, n) {
        rmsprop_update_element<T>(i, w, g, mean_square, mean_grad, velocity, lr, rho,
                                  one_minus_rho, epsilon, momentum, centered, use_momentum);
    }
}

template <typename T>
__global__ void adagrad_update(long long n, T* w, const T* g, T* accumulator, T lr, T epsilon) {
    TN_GRID_STRIDE(i, n) {
        adagrad_update_element<T>(i, w, g, accumulator, lr, epsilon);
    }
}

template <typename T>
__global__ void adadelta_update(long long n, T* w, const T* g, T* accum_grad, T* accum_delta,
                                T lr, T rho, T one_minus_rho, T epsilon) {
    TN_GRID_STRIDE(i, n) {
        adadelta_update_element<T>(i, w, g, accum_grad, accum_delta, lr, rho, one_minus_rho,
                                   epsilon);
    }
}

template <typename T>
__global__ void adam_update(long long n, T* w, const T* g, T* m, T* v, T* v_max,
                            T alpha, T beta_1, T one_minus_beta_1, T beta_2, T one_minus_beta_2,
                            T epsilon, int amsgrad) {
    TN_GRID_STRIDE(i, n) {
        adam_update_element<T>(i, w, g, m, v, v_max, alpha, beta_1, one_minus_beta_1, beta_2,
                               one_minus_beta_2, epsilon, amsgrad);
    }
}

template <typename T>
__global__ void adamax_update(long long n, T* w, const T* g, T* m, T* u,
                              T lr_corrected, T beta_1, T one_minus_beta_1, T beta_2, T epsilon) {
    TN_GRID_STRIDE(i, n) {
        adamax_update_element<T>(i, w, g, m, u, lr_corrected, beta_1, one_minus_beta_1, beta_2,
                                 epsilon);
    }
}

template <typename T>
__global__ void nadam_update(long long n, T* w, const T* g, T* m, T* v,
                             T lr, T beta_1, T one_minus_beta_1, T beta_2, T one_minus_beta_2,
                             T epsilon, T m_coef, T g_coef, T v_correction) {
    TN_GRID_STRIDE(i, n) {
        nadam_update_element<T>(i, w, g, m, v, lr, beta_1, one_minus_beta_1, beta_2,
                                one_minus_beta_2, epsilon, m_coef, g_coef, v_correction);
    }
}

#ifdef TENSORNET_NVCC_CHECK
// Explicit instantiation of every name expression tensornet/backend/kernels.py declares, so
// that an offline nvcc build compiles each kernel (at run time NVRTC instantiates them).
const void* tensornet_optimizers_check[] = {
    (const void*)&sgd_update<float>,
    (const void*)&sgd_update<double>,
    (const void*)&rmsprop_update<float>,
    (const void*)&rmsprop_update<double>,
    (const void*)&adagrad_update<float>,
    (const void*)&adagrad_update<double>,
    (const void*)&adadelta_update<float>,
    (const void*)&adadelta_update<double>,
    (const void*)&adam_update<float>,
    (const void*)&adam_update<double>,
    (const void*)&adamax_update<float>,
    (const void*)&adamax_update<double>,
    (const void*)&nadam_update<float>,
    (const void*)&nadam_update<double>,
};
#endif
