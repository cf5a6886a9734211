// common.cuh -- helpers shared by the element-wise kernel families (activations.cu,
// optimizers.cu). Included with #include "common.cuh": nvcc finds it with -I kernels, and
// tensornet/backend/kernels.py inlines it before handing a family's text to NVRTC (so the
// compile cache sees the header's text too).

// Math<T>: the float or double version of each function, callable from host and device code
// (the host build in tests/test_kernels_compile.py checks the formulas without a GPU).
template <typename T> struct Math;
template <> struct Math<float> {
    static __host__ __device__ __forceinline__ float tanh(float x) { return tanhf(x); }
    static __host__ __device__ __forceinline__ float exp(float x) { return expf(x); }
    static __host__ __device__ __forceinline__ float sqrt(float x) { return sqrtf(x); }
    static __host__ __device__ __forceinline__ float abs(float x) { return fabsf(x); }
    static __host__ __device__ __forceinline__ float tiny() { return 1.17549435082228750797e-38f; }
};
template <> struct Math<double> {
    static __host__ __device__ __forceinline__ double tanh(double x) { return ::tanh(x); }
    static __host__ __device__ __forceinline__ double exp(double x) { return ::exp(x); }
    static __host__ __device__ __forceinline__ double sqrt(double x) { return ::sqrt(x); }
    static __host__ __device__ __forceinline__ double abs(double x) { return ::fabs(x); }
    static __host__ __device__ __forceinline__ double tiny() { return 2.2250738585072013831e-308; }
};

// max(a, b) returning NaN when either is NaN (numpy.maximum semantics).
template <typename T>
__host__ __device__ __forceinline__ T nan_max(T a, T b) {
    if (a != a) return a;
    if (b != b) return b;
    return a < b ? b : a;
}
