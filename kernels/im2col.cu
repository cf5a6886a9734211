// im2col.cu -- im2col / col2im for the convolutions (their products go to cuBLAS) and max
// pooling forward / backward, channels last. One output element per thread in a grid-stride
// loop, 64-bit indices; every kernel gathers (no atomics), so results are deterministic.
//
// Loaded at run time by tensornet/backend/kernels.py: the file is read as text into
// cupy.RawModule(code=..., options=("-std=c++17", "--fmad=false"), name_expressions=[...]),
// with the name expressions im2col<T>, col2im<T>, max_pool2d<T>, max_pool2d_backward<T> for T in
// {float, double}.
//
// Compile check (every kernel, float and double; tests/test_kernels_compile.py runs it):
//   nvcc -std=c++17 --fmad=false -arch=sm_80 -DTENSORNET_NVCC_CHECK -c kernels/im2col.cu -o /dev/null
//   nvcc -std=c++17 --fmad=false -arch=sm_90 -DTENSORNET_NVCC_CHECK -c kernels/im2col.cu -o /dev/null
//
// Formulas (the NumPy reference is tensornet/backend/conv_ops.py; x is (n, h, w, c), a window
// axis is (kernel k, stride s, dilation d, padding before p, output size o)):
//   im2col   cols[(b, i, j), (u, v, ci)] = x[b, i sh + u dh - top, j sw + v dw - left, ci], 0 outside
//   col2im   dx[b, y, z, ci] = sum over (u, v) in row-major order of dcols[(b, i, j), (u, v, ci)]
//            for every (i, j) with i sh + u dh - top = y and j sw + v dw - left = z
//            (the reference's order of additions, so the sums agree to the last bit)
//   max_pool2d          y = the first maximum over the window in (u, v) row-major order,
//                       padding read as -inf; argmax = u kw + v of that entry (int32)
//   max_pool2d_backward dx[b, y, z, ch] = sum of dy[b, i, j, ch] over the windows whose
//                       argmax is (y, z), added in increasing u kw + v (the reference's order)
//
// Templates have C++ linkage; the per-element bodies are __host__ __device__ functions.

template <typename T> struct Lowest;
template <> struct Lowest<float> {
    static __host__ __device__ __forceinline__ float value() {
        union { unsigned int u; float f; } bits = {0xff800000u};  // -inf
        return bits.f;
    }
};
template <> struct Lowest<double> {
    static __host__ __device__ __forceinline__ double value() {
        union { unsigned long long u; double f; } bits = {0xfff0000000000000ull};  // -inf
        return bits.f;
    }
};

// ---------------------------------------------------------------- per-element bodies
template <typename T>
__host__ __device__ __forceinline__ void im2col_element(
        long long e, const T* x, T* cols, int h, int w, int c, int kh, int sh, int dh, int top, int oh,
        int kw, int sw, int dw, int left, int ow) {
    const int ci = (int)(e % c);
    long long t = e / c;
    const int v = (int)(t % kw);
    t /= kw;
    const int u = (int)(t % kh);
    t /= kh;  // t = (b oh + i) ow + j
    const int j = (int)(t % ow);
    t /= ow;
    const int i = (int)(t % oh);
    const long long b = t / oh;
    const int src_i = i * sh + u * dh - top;
    const int src_j = j * sw + v * dw - left;
    cols[e] = (src_i >= 0 && src_i < h && src_j >= 0 && src_j < w)
                  ? x[((b * h + src_i) * w + src_j) * c + ci] : T(0);
}

template <typename T>
__host__ __device__ __forceinline__ void col2im_element(
        long long e, const T* dcols, T* dx, int h, int w, int c, int kh, int sh, int dh, int top, int oh,
        int kw, int sw, int dw, int left, int ow) {
    const int ci = (int)(e % c);
    long long t = e / c;
    const int z = (int)(t % w);
    t /= w;
    const int y = (int)(t % h);
    const long long b = t / h;
    const long long row_length = (long long)kh * kw * c;
    T sum = T(0);
    for (int u = 0; u < kh; ++u) {
        const int di = y + top - u * dh;  // = i sh
        if (di < 0 || di % sh != 0 || di / sh >= oh) continue;
        const int i = di / sh;
        for (int v = 0; v < kw; ++v) {
            const int dj = z + left - v * dw;  // = j sw
            if (dj < 0 || dj % sw != 0 || dj / sw >= ow) continue;
            const int j = dj / sw;
            sum += dcols[((b * oh + i) * ow + j) * row_length + (u * kw + v) * c + ci];
        }
    }
    dx[e] = sum;
}

template <typename T>
__host__ __device__ __forceinline__ void max_pool2d_element(
        long long e, const T* x, T* y, int* argmax, int h, int w, int c, int kh, int sh, int top, int oh,
        int kw, int sw, int left, int ow) {
    const int ch = (int)(e % c);
    long long t = e / c;
    const int j = (int)(t % ow);
    t /= ow;
    const int i = (int)(t % oh);
    const long long b = t / oh;
    T best = Lowest<T>::value();
    int index = 0;
    for (int k = 0; k < kh * kw; ++k) {
        const int src_i = i * sh + k / kw - top;
        const int src_j = j * sw + k % kw - left;
        const T value = (src_i >= 0 && src_i < h && src_j >= 0 && src_j < w)
                            ? x[((b * h + src_i) * w + src_j) * c + ch] : Lowest<T>::value();
        if (k == 0 || value > best) {
            best = value;
            index = k;
        }
    }
    y[e] = best;
    argmax[e] = index;
}

template <typename T>
__host__ __device__ __forceinline__ void max_pool2d_backward_element(
        long long e, const T* dy, const int* argmax, T* dx, int h, int w, int c, int kh, int sh, int top,
        int oh, int kw, int sw, int left, int ow) {
    const int ch = (int)(e % c);
    long long t = e / c;
    const int z = (int)(t % w);
    t /= w;
    const int y = (int)(t % h);
    const long long b = t / h;
    T sum = T(0);
    // windows (i, j) holding (y, z) at offset (u, v) = (y + top - i sh, z + left - j sw), visited
    // in increasing u kw + v: i from the largest to the smallest, then j likewise
    const int pi = y + top, pj = z + left;
    int i_high = pi / sh;
    if (i_high > oh - 1) i_high = oh - 1;
    int j_high = pj / sw;
    if (j_high > ow - 1) j_high = ow - 1;
    for (int i = i_high; i >= 0 && pi - i * sh < kh; --i) {
        for (int j = j_high; j >= 0 && pj - j * sw < kw; --j) {
            const long long o = ((b * oh + i) * ow + j) * c + ch;
            if (argmax[o] == (pi - i * sh) * kw + (pj - j * sw)) sum += dy[o];
        }
    }
    dx[e] = sum;
}

// ---------------------------------------------------------------- kernels
template <typename T>
__global__ void im2col(long long n, const T* __restrict__ x, T* __restrict__ cols, int h, int w, int c,
                       int kh, int sh, int dh, int top, int oh, int kw, int sw, int dw, int left, int ow) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {
        im2col_element<T>(e, x, cols, h, w, c, kh, sh, dh, top, oh, kw, sw, dw, left, ow);
    }
}

template <typename T>
__global__ void col2im(long long n, const T* __restrict__ dcols, T* __restrict__ dx, int h, int w, int c,
                       int kh, int sh, int dh, int top, int oh, int kw, int sw, int dw, int left, int ow) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {
        col2im_element<T>(e, dcols, dx, h, w, c, kh, sh, dh, top, oh, kw, sw, dw, left, ow);
    }
}

template <typename T>
__global__ void max_pool2d(long long n, const T* __restrict__ x, T* __restrict__ y, int* __restrict__ argmax,
                           int h, int w, int c, int kh, int sh, int top, int oh, int kw, int sw, int left,
                           int ow) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {
        max_pool2d_element<T>(e, x, y, argmax, h, w, c, kh, sh, top, oh, kw, sw, left, ow);
    }
}

template <typename T>
__global__ void max_pool2d_backward(long long n, const T* __restrict__ dy, const int* __restrict__ argmax,
                                    T* __restrict__ dx, int h, int w, int c, int kh, int sh, int top, int oh,
                                    int kw, int sw, int left, int ow) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {
        max_pool2d_backward_element<T>(e, dy, argmax, dx, h, w, c, kh, sh, top, oh, kw, sw, left, ow);
    }
}

#ifdef TENSORNET_NVCC_CHECK
// Explicit instantiation of every name expression tensornet/backend/kernels.py declares.
const void* tensornet_im2col_check[] = {
    (const void*)&im2col<float>,
    (const void*)&im2col<double>,
    (const void*)&col2im<float>,
    (const void*)&col2im<double>,
    (const void*)&max_pool2d<float>,
    (const void*)&max_pool2d<double>,
    (const void*)&max_pool2d_backward<float>,
    (const void*)&max_pool2d_backward<double>,
};
#endif
