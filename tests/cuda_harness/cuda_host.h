// cuda_host.h -- the CUDA device environment for a host build of kernels/*.cu (force-included
// with g++ -include). Each CUDA thread of a block is a ucontext fiber; a block's fibers run on one
// worker OS thread and switch only at barriers (__syncthreads, and the warp-wide exchange inside
// every shuffle / vote), so a missing barrier reads stale data deterministically. Several
// workers run blocks at once, taking them in a shuffled order, so the "last block to finish"
// is a different block from launch to launch. See tests/cuda_harness/__init__.py.
#pragma once
#include <cmath>
#include <math.h>
#include <cstdint>
#include <cstring>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
// Block-scope `thread_local` is static per worker OS thread, and a block runs on one worker:
// one copy of each __shared__ variable per running block.
#define __shared__ thread_local

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int a = 1, unsigned int b = 1, unsigned int c = 1) : x(a), y(b), z(c) {}
};

namespace tn {
struct BlockState;
extern thread_local uint3 thread_idx;
extern thread_local uint3 block_idx;
extern thread_local dim3 block_dim;
extern thread_local dim3 grid_dim;
void sync_block();                                 // __syncthreads
uint64_t warp_exchange(uint64_t mine, int src_lane);  // value of src_lane, a warp-wide barrier
void check_full_mask(unsigned mask, const char* what);
int lane_id();
}  // namespace tn

#define threadIdx (::tn::thread_idx)
#define blockIdx (::tn::block_idx)
#define blockDim (::tn::block_dim)
#define gridDim (::tn::grid_dim)
#define warpSize 32

inline void __syncthreads() { tn::sync_block(); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    tn::check_full_mask(mask, "__syncwarp");
    tn::warp_exchange(0, tn::lane_id());
}

namespace tn {
template <typename T> inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <typename T> inline T from_bits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}
}  // namespace tn

template <typename T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    tn::check_full_mask(mask, "__shfl_sync");
    const int lane = tn::lane_id();
    const int base = lane & ~(width - 1);
    return tn::from_bits<T>(tn::warp_exchange(tn::to_bits(v), base + (src & (width - 1))));
}
template <typename T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    tn::check_full_mask(mask, "__shfl_xor_sync");
    const int lane = tn::lane_id();
    int src = lane ^ lane_mask;
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
    return tn::from_bits<T>(tn::warp_exchange(tn::to_bits(v), src));
}
template <typename T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    tn::check_full_mask(mask, "__shfl_down_sync");
    const int lane = tn::lane_id();
    int src = lane + (int)delta;
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
    return tn::from_bits<T>(tn::warp_exchange(tn::to_bits(v), src));
}
template <typename T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    tn::check_full_mask(mask, "__shfl_up_sync");
    const int lane = tn::lane_id();
    int src = lane - (int)delta;
    if (src < (lane & ~(width - 1))) src = lane;
    return tn::from_bits<T>(tn::warp_exchange(tn::to_bits(v), src));
}
namespace tn { unsigned warp_ballot(bool predicate); }
inline unsigned __ballot_sync(unsigned mask, int predicate) {
    tn::check_full_mask(mask, "__ballot_sync");
    return tn::warp_ballot(predicate != 0);
}
inline int __any_sync(unsigned mask, int predicate) {
    tn::check_full_mask(mask, "__any_sync");
    return tn::warp_ballot(predicate != 0) != 0u;
}
inline int __all_sync(unsigned mask, int predicate) {
    tn::check_full_mask(mask, "__all_sync");
    return tn::warp_ballot(predicate == 0) == 0u;
}

// Atomics: real atomics (blocks run concurrently on several OS threads).
template <typename T> inline T atomicAdd(T* address, T value) {
    if constexpr (std::is_integral<T>::value) {
        return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
    } else {
        T old, desired;
        __atomic_load(address, &old, __ATOMIC_SEQ_CST);
        do {
            desired = old + value;
        } while (!__atomic_compare_exchange(address, &old, &desired, false, __ATOMIC_SEQ_CST,
                                            __ATOMIC_SEQ_CST));
        return old;
    }
}
template <typename T> inline T atomicExch(T* address, T value) {
    return __atomic_exchange_n(address, value, __ATOMIC_SEQ_CST);
}
template <typename T> inline T atomicMax(T* address, T value) {
    return __atomic_fetch_max(address, value, __ATOMIC_SEQ_CST);
}

inline float __int_as_float(int x) { return tn::from_bits<float>((uint32_t)x); }
inline int __float_as_int(float x) { return (int)(uint32_t)tn::to_bits(x); }
inline double __longlong_as_double(long long x) { return tn::from_bits<double>((uint64_t)x); }
inline long long __double_as_longlong(double x) { return (long long)tn::to_bits(x); }
