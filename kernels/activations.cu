// activations.cu -- fused bias add + activation forward, and activation backward fused with
// the incoming gradient. One element per thread in a grid-stride loop, 64-bit indices.
//
// Loaded at run time by tensornet/backend/kernels.py: the file is read as text into
// cupy.RawModule(code=..., options=("-std=c++17", "--fmad=false"), name_expressions=[...]),
// with the name expressions `bias_activation<T, Act>` and `activation_backward<T, Act>` for
// T in {float, double} (arithmetic is done in T) and Act in the structs below.
//
// Compile check (every kernel, float and double; tests/test_kernels_compile.py runs it):
//   nvcc -std=c++17 --fmad=false -arch=sm_80 -DTENSORNET_NVCC_CHECK -c kernels/activations.cu -o /dev/null
//   nvcc -std=c++17 --fmad=false -arch=sm_90 -DTENSORNET_NVCC_CHECK -c kernels/activations.cu -o /dev/null
//
// Formulas (the NumPy reference is tensornet/backend/base.py; operations are written in the
// same order, and --fmad=false keeps a*b+c from being contracted, so only tanh and exp differ by ulps):
//   forward  bias_activation<T, Act>(n, z, bias, out, features, alpha), for i < n:
//              v = z[i] + bias[i mod features];  z[i] = v (in place, as the reference does);
//              out[i] = f(v)   (out may be z)
//   backward activation_backward<T, Act>(n, dy, y, dx, alpha), for i < n:
//              dx[i] = dy[i] * f'(y[i]),  y = f(x) the forward output  (dx may be dy or y)
//   Linear     f(x) = x                          f' = 1
//   Relu       f(x) = max(0, x)                  f' = 1[y > 0]
//   LeakyRelu  f(x) = max(alpha x, x)            f' = 1 where y > 0, alpha elsewhere
//   Sigmoid    f(x) = 1 / (1 + e^-x) as u / (1 + e), e = exp(-|x|), u = 1 (x >= 0) or e (x < 0):
//              no overflow, full relative precision in both tails      f' = (1 - y) y
//   Tanh       f(x) = tanh(x)                    f' = 1 - y y
// max() propagates NaN like numpy.maximum, so a diverging model shows NaN rather than 0.
//
// Templates have C++ linkage; each kernel's per-element body is a __host__ __device__
// function (`*_element`) so that a host build can check the formulas without a GPU.

#include "common.cuh"

struct Linear {
    template <typename T> static __host__ __device__ __forceinline__ T forward(T x, T) { return x; }
    template <typename T> static __host__ __device__ __forceinline__ T backward(T dy, T, T) { return dy; }
};

struct Relu {
    template <typename T> static __host__ __device__ __forceinline__ T forward(T x, T) {
        return nan_max(x, T(0));
    }
    template <typename T> static __host__ __device__ __forceinline__ T backward(T dy, T y, T) {
        return dy * T(y > T(0) ? 1 : 0);
    }
};

struct LeakyRelu {
    template <typename T> static __host__ __device__ __forceinline__ T forward(T x, T alpha) {
        return nan_max(x, x * alpha);
    }
    template <typename T> static __host__ __device__ __forceinline__ T backward(T dy, T y, T alpha) {
        return dy * (y > T(0) ? T(1) : alpha);
    }
};

struct Sigmoid {
    template <typename T> static __host__ __device__ __forceinline__ T forward(T x, T) {
        const T e = Math<T>::exp(-Math<T>::abs(x));
        return (x >= T(0) ? T(1) : e) / (T(1) + e);
    }
    template <typename T> static __host__ __device__ __forceinline__ T backward(T dy, T y, T) {
        return dy * ((T(1) - y) * y);
    }
};

struct Tanh {
    template <typename T> static __host__ __device__ __forceinline__ T forward(T x, T) {
        return Math<T>::tanh(x);
    }
    template <typename T> static __host__ __device__ __forceinline__ T backward(T dy, T y, T) {
        return dy * (T(1) - y * y);
    }
};

// ---------------------------------------------------------------- per-element bodies
template <typename T, typename Act>
__host__ __device__ __forceinline__ void bias_activation_element(
        long long i, T* z, const T* bias, T* out, long long features, T alpha) {
    const T v = z[i] + bias[i % features];
    if (out != z) z[i] = v;
    out[i] = Act::forward(v, alpha);
}

template <typename T, typename Act>
__host__ __device__ __forceinline__ void activation_backward_element(
        long long i, const T* dy, const T* y, T* dx, T alpha) {
    // dx may alias dy or y: each element is read before it is written, by the same thread.
    dx[i] = Act::backward(dy[i], y[i], alpha);
}

// ---------------------------------------------------------------- kernels
template <typename T, typename Act>
__global__ void bias_activation(long long n, T* z, const T* __restrict__ bias, T* out,
                                long long features, T alpha) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        bias_activation_element<T, Act>(i, z, bias, out, features, alpha);
    }
}

template <typename T, typename Act>
__global__ void activation_backward(long long n, const T* dy, const T* y, T* dx, T alpha) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        activation_backward_element<T, Act>(i, dy, y, dx, alpha);
    }
}

#ifdef TENSORNET_NVCC_CHECK
// Explicit instantiation of every name expression tensornet/backend/kernels.py declares, so
// that an offline nvcc build compiles each kernel (at run time NVRTC instantiates them).
const void* tensornet_activations_check[] = {
    (const void*)&bias_activation<float, Linear>,
    (const void*)&bias_activation<float, Relu>,
    (const void*)&bias_activation<float, LeakyRelu>,
    (const void*)&bias_activation<float, Sigmoid>,
    (const void*)&bias_activation<float, Tanh>,
    (const void*)&bias_activation<double, Linear>,
    (const void*)&bias_activation<double, Relu>,
    (const void*)&bias_activation<double, LeakyRelu>,
    (const void*)&bias_activation<double, Sigmoid>,
    (const void*)&bias_activation<double, Tanh>,
    (const void*)&activation_backward<float, Relu>,
    (const void*)&activation_backward<float, LeakyRelu>,
    (const void*)&activation_backward<float, Sigmoid>,
    (const void*)&activation_backward<float, Tanh>,
    (const void*)&activation_backward<double, Relu>,
    (const void*)&activation_backward<double, LeakyRelu>,
    (const void*)&activation_backward<double, Sigmoid>,
    (const void*)&activation_backward<double, Tanh>,
};
#endif
