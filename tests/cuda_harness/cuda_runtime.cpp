// cuda_runtime.cpp -- the scheduler of the host CUDA harness (see cuda_host.h).
//
// run_grid: workers (OS threads) take blocks from a shuffled list; a worker runs a block as
// blockDim fibers (ucontext), resuming them in increasing thread order, or in decreasing order
// every other launch: a thread reading what a thread of lower index writes without a barrier
// between them reads stale data in one order, one reading what a higher index writes in the
// other. A fiber runs until it finishes or
// waits at a barrier: __syncthreads (released when every live thread of the block waits there)
// or a warp exchange (released when every lane of the warp waits there). Waiting at different
// barriers, or at a barrier some thread of the block (lane of the warp) has exited without
// reaching, is reported as a deadlock: CUDA requires every thread to reach a __syncthreads,
// and every lane of the full mask to reach a shuffle or vote. A segmentation
// fault inside a kernel (a guard page of an argument touched) ends the launch with an error
// instead of the process: the signal handler jumps back to the worker's scheduler.
#include <algorithm>
#include <atomic>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "cuda_host.h"

namespace tn {
thread_local uint3 thread_idx;
thread_local uint3 block_idx;
thread_local dim3 block_dim;
thread_local dim3 grid_dim;

namespace {
enum State { RUNNABLE, WAIT_BLOCK, WAIT_WARP, DONE };
constexpr size_t STACK_BYTES = 256 * 1024;

struct Fiber {
    ucontext_t ctx;
    State state;
    uint64_t slot;  // value offered at a warp exchange
    char* stack;
};

struct Worker {
    ucontext_t scheduler;
    std::vector<Fiber> fibers;
    int current = -1;
    const std::function<void()>* body = nullptr;
    sigjmp_buf fault_jump;
    std::vector<char> alt_stack;
};

thread_local Worker* worker = nullptr;

std::mutex error_mutex;
std::string first_error;
std::atomic<bool> failed{false};
std::atomic<uintptr_t> fault_address{0};

void fail(const std::string& message) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!failed.exchange(true)) first_error = message;
}

void fiber_entry() {
    (*worker->body)();
    worker->fibers[worker->current].state = DONE;
    swapcontext(&worker->fibers[worker->current].ctx, &worker->scheduler);
}

void wait(State state) {
    Fiber& f = worker->fibers[worker->current];
    f.state = state;
    swapcontext(&f.ctx, &worker->scheduler);
}

void on_fault(int, siginfo_t* info, void*) {
    if (worker == nullptr) {  // not a harness thread: restore the default and re-raise
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    fault_address.store(reinterpret_cast<uintptr_t>(info->si_addr));
    siglongjmp(worker->fault_jump, 1);
}

// Run one block to completion on this worker; false on deadlock.
bool run_block(unsigned threads, bool reverse) {
    Worker& w = *worker;
    for (unsigned t = 0; t < threads; ++t) {
        Fiber& f = w.fibers[t];
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = STACK_BYTES;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, fiber_entry, 0);
        f.state = RUNNABLE;
    }
    const unsigned warps = (threads + 31) / 32;
    for (;;) {
        bool ran = false;
        for (unsigned k = 0; k < threads; ++k) {
            const unsigned t = reverse ? threads - 1 - k : k;
            if (w.fibers[t].state != RUNNABLE) continue;
            ran = true;
            w.current = (int)t;
            thread_idx.x = t % block_dim.x;
            thread_idx.y = (t / block_dim.x) % block_dim.y;
            thread_idx.z = t / (block_dim.x * block_dim.y);
            swapcontext(&w.scheduler, &w.fibers[t].ctx);
        }
        if (ran) continue;
        unsigned live = 0, at_block = 0;
        bool released = false;
        for (unsigned warp = 0; warp < warps; ++warp) {
            unsigned live_lanes = 0, at_warp = 0, lanes = 0;
            for (unsigned t = warp * 32; t < threads && t < warp * 32 + 32; ++t) {
                const State s = w.fibers[t].state;
                ++lanes;
                if (s != DONE) ++live_lanes;
                if (s == WAIT_WARP) ++at_warp;
                if (s == WAIT_BLOCK) ++at_block;
            }
            live += live_lanes;
            if (at_warp > 0 && at_warp == lanes) {
                for (unsigned t = warp * 32; t < threads && t < warp * 32 + 32; ++t)
                    if (w.fibers[t].state == WAIT_WARP) w.fibers[t].state = RUNNABLE;
                released = true;
            }
        }
        if (live == 0) return true;
        if (released) continue;
        if (at_block == threads) {
            for (unsigned t = 0; t < threads; ++t)
                if (w.fibers[t].state == WAIT_BLOCK) w.fibers[t].state = RUNNABLE;
            continue;
        }
        return false;
    }
}

void work(const std::vector<unsigned>* order, std::atomic<size_t>* next, const unsigned* grid,
          const unsigned* block, const std::function<void()>* body, bool reverse) {
    Worker w;
    worker = &w;
    w.body = body;
    const unsigned threads = block[0] * block[1] * block[2];
    w.fibers.resize(threads);
    char* stacks = static_cast<char*>(mmap(nullptr, STACK_BYTES * threads, PROT_READ | PROT_WRITE,
                                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (stacks == MAP_FAILED) {
        fail("cannot map the fiber stacks");
        worker = nullptr;
        return;
    }
    for (unsigned t = 0; t < threads; ++t) w.fibers[t].stack = stacks + t * STACK_BYTES;
    w.alt_stack.resize(1 << 16);
    stack_t alt{};
    alt.ss_sp = w.alt_stack.data();
    alt.ss_size = w.alt_stack.size();
    sigaltstack(&alt, nullptr);
    block_dim = dim3(block[0], block[1], block[2]);
    grid_dim = dim3(grid[0], grid[1], grid[2]);
    if (sigsetjmp(w.fault_jump, 1) == 0) {
        while (!failed.load()) {
            const size_t k = next->fetch_add(1);
            if (k >= order->size()) break;
            const unsigned b = (*order)[k];
            block_idx.x = b % grid[0];
            block_idx.y = (b / grid[0]) % grid[1];
            block_idx.z = b / (grid[0] * grid[1]);
            if (!run_block(threads, reverse)) {
                fail("deadlock: the threads of block " + std::to_string(b) +
                      " wait at different barriers, or at one that other threads exited without "
                     "reaching (__syncthreads in divergent code, or a full-mask shuffle or vote "
                     "not reached by every lane)");
            }
        }
    } else {
        char text[160];
        std::snprintf(text, sizeof text, "segmentation fault at address 0x%llx in block (%u, %u, %u)",
                      (unsigned long long)fault_address.load(), block_idx.x, block_idx.y, block_idx.z);
        fail(text);
    }
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
    munmap(stacks, STACK_BYTES * threads);
    worker = nullptr;
}
}  // namespace

int lane_id() { return worker->current & 31; }

void check_full_mask(unsigned mask, const char* what) {
    if (mask != 0xffffffffu) {
        std::fprintf(stderr, "cuda harness: %s with a partial mask 0x%x is not modelled\n", what, mask);
        std::abort();
    }
}

void sync_block() { wait(WAIT_BLOCK); }

uint64_t warp_exchange(uint64_t mine, int src_lane) {
    Worker& w = *worker;
    const int me = w.current;
    const int base = me & ~31;
    w.fibers[me].slot = mine;
    wait(WAIT_WARP);  // every lane has offered its value
    int src = base + src_lane;
    if (src >= (int)w.fibers.size() || w.fibers[src].state == DONE) src = me;
    const uint64_t value = w.fibers[src].slot;
    wait(WAIT_WARP);  // every lane has read before any lane offers again
    return value;
}

unsigned warp_ballot(bool predicate) {
    Worker& w = *worker;
    const int me = w.current;
    const int base = me & ~31;
    w.fibers[me].slot = predicate ? 1 : 0;
    wait(WAIT_WARP);
    unsigned bits = 0;
    for (int lane = 0; lane < 32 && base + lane < (int)w.fibers.size(); ++lane)
        if (w.fibers[base + lane].state != DONE && w.fibers[base + lane].slot) bits |= 1u << lane;
    wait(WAIT_WARP);
    return bits;
}

int run_grid(const unsigned* grid, const unsigned* block, const std::function<void()>& body) {
    const unsigned blocks = grid[0] * grid[1] * grid[2];
    std::vector<unsigned> order(blocks);
    for (unsigned b = 0; b < blocks; ++b) order[b] = b;
    static std::atomic<unsigned> launches{0};
    const unsigned launch = launches.fetch_add(1);
    const bool reverse = (launch & 1u) != 0;  // threads in decreasing order every other launch
    const char* seed_env = std::getenv("TENSORNET_HARNESS_SEED");
    std::mt19937 rng((seed_env ? (unsigned)std::atoi(seed_env) : 12345u) + launch);
    std::shuffle(order.begin(), order.end(), rng);
    failed.store(false);
    first_error.clear();
    struct sigaction action{}, previous{}, previous_bus{};
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previous);
    sigaction(SIGBUS, &action, &previous_bus);
    const char* workers_env = std::getenv("TENSORNET_HARNESS_WORKERS");
    const unsigned workers = std::max(1u, std::min(blocks, workers_env ? (unsigned)std::atoi(workers_env) : 4u));
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (unsigned k = 0; k < workers; ++k) pool.emplace_back(work, &order, &next, grid, block, &body, reverse);
    for (auto& t : pool) t.join();
    sigaction(SIGSEGV, &previous, nullptr);
    sigaction(SIGBUS, &previous_bus, nullptr);
    return failed.load() ? 1 : 0;
}
}  // namespace tn

extern "C" const char* tn_last_error() { return tn::first_error.c_str(); }
extern "C" unsigned long long tn_fault_address() { return tn::fault_address.load(); }

// Guarded buffers: nbytes ending exactly at an inaccessible page, with an inaccessible page
// before the first data page and the bytes between it and the data filled with a canary.
namespace {
constexpr unsigned char CANARY = 0xA5;
size_t page() { return (size_t)sysconf(_SC_PAGESIZE); }
size_t data_pages(size_t nbytes) { return (nbytes + page() - 1) / page(); }
}  // namespace

extern "C" void* tn_guarded_alloc(size_t nbytes) {
    const size_t P = page(), pages = data_pages(nbytes);
    char* base = static_cast<char*>(mmap(nullptr, (pages + 2) * P, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base == MAP_FAILED) return nullptr;
    mprotect(base, P, PROT_NONE);
    mprotect(base + (pages + 1) * P, P, PROT_NONE);
    char* data = base + (pages + 1) * P - nbytes;
    std::memset(base + P, CANARY, data - (base + P));
    return data;
}

// 0 when the canary before the data is intact, else the number of bytes overwritten.
extern "C" long long tn_guarded_check(void* data, size_t nbytes) {
    const size_t P = page(), pages = data_pages(nbytes);
    char* end = static_cast<char*>(data) + nbytes;
    char* first = end - pages * P;
    long long bad = 0;
    for (char* p = first; p < static_cast<char*>(data); ++p) bad += (unsigned char)*p != CANARY;
    return bad;
}

extern "C" void tn_guarded_free(void* data, size_t nbytes) {
    const size_t P = page(), pages = data_pages(nbytes);
    char* end = static_cast<char*>(data) + nbytes;
    munmap(end - pages * P - P, (pages + 2) * P);
}
