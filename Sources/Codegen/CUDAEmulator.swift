/// blockc's CUDA emulator: a C++ header against which the CUDA of `blockc emit-cuda` and a GPU bundle's
/// harness build with a host compiler (g++) and run on a CPU, checking barriers, warp shuffles, shared memory
/// limits and out-of-bounds writes on the way (Docs/CUDA.md, "The CUDA emulator").
///
/// The header is a string here, not a file beside the tests, so that every bundle can carry it
/// (`emulator/blockc_cuda_emu.h`, with `emulator/cuda_runtime.h` including it) and `run.sh --emulate` needs
/// nothing but the bundle and a C++17 compiler. The generated CUDA is not changed for it: only the
/// `kernel<<<grid, block, shared>>>(args)` launches, which no C++ compiler parses, are rewritten into calls
/// (`rewriteLaunches`, or `launchRewriteSed` in a shell).
public enum CUDAEmulator {
    /// The emulator header (`blockc_cuda_emu.h`).
    public static let header = #"""
        /* blockc's CUDA emulator: the CUDA that `blockc emit-cuda` writes, and a bundle's harness, built with a
         * C++17 host compiler and run on a CPU (Docs/CUDA.md, "The CUDA emulator").
         *
         *   sed -E 's/([A-Za-z_][A-Za-z0-9_]*)<<<(.*)>>>\(/blk_emu::launch(\1, "\1", \2)(/' NAME.cu > NAME.emu.cpp
         *   g++ -std=c++17 -O1 -I emulator -DBLOCKC_EMU_ARCH=90 -fsanitize=thread -g1 -c NAME.emu.cpp -o NAME.emu.o
         *   g++ -std=c++17 -O1 -I emulator -I . NAME.emu.o -x c++ harness.cu -o harness
         *
         * (`-I emulator` makes `#include <cuda_runtime.h>` this header; the sed turns `k<<<g, t, s>>>(...)` into a
         * call.) Each CUDA thread is a fiber with its own stack; the blocks of a launch run one at a time, in the
         * order BLOCKC_EMU_ORDER names (forward, reverse, random or random:SEED; random also shuffles the order in
         * which a block's threads run between barriers). It checks, and stops with exit status 4 and a message
         * naming the kernel when one fails:
         *   - __syncthreads: a barrier over the block's threads; threads waiting at different barriers, or a
         *     thread that exits while others wait, is divergence;
         *   - __shfl_xor_sync: a per-warp exchange; every lane of the mask must reach it with the same mask;
         *   - dynamic shared memory: exactly the launched bytes, filled with NaN, followed by a poisoned guard zone
         *     checked after every block; more than 48 KiB needs cudaFuncSetAttribute, which refuses more than the
         *     architecture's opt-in limit (sm_80: 166,912 bytes, sm_90: 232,448);
         *   - device memory: cudaMalloc fills with NaN and surrounds each allocation with poisoned guard zones,
         *     (4 KiB, or the allocation's size if larger) checked after every launch and by cudaFree; a kernel
         *     argument or a cudaMemcpy/cudaMemset operand that is not device memory where the call needs it, or a
         *     copy that overruns its allocation, is an error; two pointer arguments into one allocation, one of
         *     them writable, break __restrict__;
         *   - races on shared memory, when the kernels' translation unit is compiled with -fsanitize=thread (and
         *     linked without it): a read of a word another thread wrote since the last barrier, or a write of a
         *     word another thread read or wrote since then.
         */
        #ifndef BLOCKC_CUDA_EMU_H
        #define BLOCKC_CUDA_EMU_H

        #define BLOCKC_CUDA_EMULATOR 1

        #include <math.h>
        #include <stdarg.h>
        #include <stddef.h>
        #include <stdint.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <time.h>
        #include <ucontext.h>
        #include <dlfcn.h>
        #include <unistd.h>

        #include <functional>
        #include <map>
        #include <type_traits>
        #include <vector>

        #ifndef BLOCKC_EMU_ARCH
        #define BLOCKC_EMU_ARCH 90
        #endif

        #define __global__
        #define __device__
        #define __host__
        #define __forceinline__ inline
        #define __noinline__ __attribute__((noinline))
        #define __launch_bounds__(...)
        #define __shared__
        #define __align__(n) __attribute__((aligned(n)))

        struct dim3 {
            unsigned int x, y, z;
            dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
        };
        struct uint3 {
            unsigned int x, y, z;
        };
        struct __attribute__((aligned(16))) float4 {
            float x, y, z, w;
        };
        inline float4 make_float4(float x, float y, float z, float w) {
            float4 r = {x, y, z, w};
            return r;
        }

        enum cudaError {
            cudaSuccess = 0,
            cudaErrorInvalidValue = 1,
            cudaErrorMemoryAllocation = 2,
            cudaErrorInvalidConfiguration = 9,
            cudaErrorInvalidDevicePointer = 17,
            cudaErrorInvalidMemcpyDirection = 21,
            cudaErrorNoDevice = 100
        };
        typedef enum cudaError cudaError_t;
        enum cudaMemcpyKind {
            cudaMemcpyHostToHost = 0,
            cudaMemcpyHostToDevice = 1,
            cudaMemcpyDeviceToHost = 2,
            cudaMemcpyDeviceToDevice = 3,
            cudaMemcpyDefault = 4
        };
        enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
        typedef struct blk_emu_event *cudaEvent_t;

        /* The block's dynamic shared memory: one arena, since blocks run one at a time (weak: one per program). */
        #define BLK_EMU_SHARED_CAPACITY 232448
        #define BLK_EMU_SHARED_GUARD 4096
        extern "C" {
        __attribute__((weak, aligned(16))) float blk_smem[(BLK_EMU_SHARED_CAPACITY + BLK_EMU_SHARED_GUARD) / 4];
        }

        namespace blk_emu {

        const size_t min_guard_bytes = 4096; /* poison on each side of a device allocation, or its size if larger */
        const uint32_t guard_word = 0xFFA5A5A5u; /* a NaN, distinct from the 0xFF fill */
        const size_t stack_bytes = 256 * 1024; /* each thread's stack */
        const size_t default_shared = 48 * 1024;

        /* The opt-in dynamic shared memory limit of the emulated architecture (cudaDevAttrMaxSharedMemoryPerBlockOptin). */
        inline size_t shared_optin_limit() { return BLOCKC_EMU_ARCH >= 90 ? 232448 : 166912; }

        [[noreturn]] inline void fail(const char *kernel, const char *format, ...) {
            fflush(stdout);
            if (kernel)
                fprintf(stderr, "cuda-emulator: error: kernel %s: ", kernel);
            else
                fprintf(stderr, "cuda-emulator: error: ");
            va_list args;
            va_start(args, format);
            vfprintf(stderr, format, args);
            va_end(args);
            fputc('\n', stderr);
            exit(4);
        }

        inline void note(const char *format, ...) {
            fprintf(stderr, "cuda-emulator: ");
            va_list args;
            va_start(args, format);
            vfprintf(stderr, format, args);
            va_end(args);
            fputc('\n', stderr);
        }

        /* ---- device memory ---- */
        struct Allocation {
            unsigned char *raw; /* guard, bytes, guard */
            size_t bytes;
            size_t guard;
        };

        inline std::map<uintptr_t, Allocation> &allocations() {
            static std::map<uintptr_t, Allocation> table;
            return table;
        }

        /* The allocation holding [p, p + n), or NULL. */
        inline const std::pair<const uintptr_t, Allocation> *find(const void *p, size_t n) {
            uintptr_t a = (uintptr_t)p;
            auto &table = allocations();
            auto it = table.upper_bound(a);
            if (it == table.begin()) return NULL;
            --it;
            if (a < it->first) return NULL;
            if (a - it->first > it->second.bytes || n > it->second.bytes - (a - it->first)) return NULL;
            if (n == 0 && a - it->first == it->second.bytes && it->second.bytes != 0) return NULL;
            return &*it;
        }

        inline void fill_guard(unsigned char *p, size_t n) {
            for (size_t k = 0; k < n; k += 4) memcpy(p + k, &guard_word, 4);
        }

        /* The offset of the first guard byte that changed, or -1. */
        inline long damaged_guard(const unsigned char *p, size_t n) {
            for (size_t k = 0; k < n; k++)
                if (p[k] != ((const unsigned char *)&guard_word)[k % 4]) return (long)k;
            return -1;
        }

        inline void check_guards(const char *kernel, const char *when) {
            for (auto &entry : allocations()) {
                const Allocation &a = entry.second;
                long before = damaged_guard(a.raw, a.guard);
                if (before >= 0)
                    fail(kernel, "%s: a write %ld byte(s) before the start of a device allocation of %zu bytes", when,
                         (long)a.guard - before, a.bytes);
                long after = damaged_guard(a.raw + a.guard + a.bytes, a.guard);
                if (after >= 0)
                    fail(kernel, "%s: a write at byte %ld past the end of a device allocation of %zu bytes", when, after,
                         a.bytes);
            }
        }

        inline cudaError_t &last_error() {
            static cudaError_t e = cudaSuccess;
            return e;
        }

        inline std::map<const void *, size_t> &shared_attribute() {
            static std::map<const void *, size_t> table;
            return table;
        }

        /* ---- the order of blocks and of threads ---- */
        struct Order {
            int mode; /* 0 forward, 1 reverse, 2 random */
            uint64_t state;
        };

        inline Order &order() {
            static Order o = [] {
                Order r = {0, 1};
                const char *s = getenv("BLOCKC_EMU_ORDER");
                if (!s || !*s || !strcmp(s, "forward")) return r;
                if (!strcmp(s, "reverse")) {
                    r.mode = 1;
                    return r;
                }
                if (!strncmp(s, "random", 6) && (s[6] == 0 || s[6] == ':')) {
                    r.mode = 2;
                    if (s[6] == ':') {
                        char *end = NULL;
                        r.state = strtoull(s + 7, &end, 10);
                        if (end == s + 7 || *end) fail(NULL, "BLOCKC_EMU_ORDER=%s: the seed is not a number", s);
                    }
                    return r;
                }
                fail(NULL, "BLOCKC_EMU_ORDER=%s: use forward, reverse, random or random:SEED", s);
            }();
            return o;
        }

        inline uint64_t next_random() { /* splitmix64 */
            uint64_t z = (order().state += 0x9E3779B97F4A7C15ull);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            return z ^ (z >> 31);
        }

        inline void arrange(std::vector<unsigned> &v) {
            for (size_t k = 0; k < v.size(); k++) v[k] = (unsigned)k;
            if (order().mode == 1) {
                for (size_t k = 0; k < v.size() / 2; k++) {
                    unsigned t = v[k];
                    v[k] = v[v.size() - 1 - k];
                    v[v.size() - 1 - k] = t;
                }
            } else if (order().mode == 2) {
                for (size_t k = v.size(); k > 1; k--) {
                    size_t j = (size_t)(next_random() % k);
                    unsigned t = v[k - 1];
                    v[k - 1] = v[j];
                    v[j] = t;
                }
            }
        }

        /* ---- threads as fibers ---- */
        enum State { runnable, at_barrier, at_shuffle, exited };

        struct Thread {
            ucontext_t context;
            State state;
            int line;              /* the barrier's source line */
            unsigned mask;         /* the shuffle's mask */
            unsigned long shuffles; /* warp collectives done (selects the exchange buffer) */
            bool mma;               /* waiting at mma.sync, not __shfl_xor_sync */
        };

        /* One mma.sync of a warp (bf16 m16n8k16 or tf32 m16n8k8, each lane's `shape`): every lane's fragments
           (a[4], b[2], c[4]), then every lane's d[4]. */
        enum MMAShape { bf16_m16n8k16, tf32_m16n8k8 };
        struct MMA {
            uint32_t a[32][4], b[32][2];
            float c[32][4], d[32][4];
            MMAShape shape[32];
        };

        struct Warp {
            uint64_t values[2][32];
            MMA mma[2];
        };

        struct Builtins {
            uint3 threadIdx, blockIdx;
            dim3 blockDim, gridDim;
        };

        struct Block {
            const char *kernel;
            std::vector<Thread> threads;
            std::vector<Warp> warps;
            ucontext_t scheduler;
            size_t shared; /* dynamic shared bytes */
            std::function<void()> *body;
            Thread *current;
        };

        inline Builtins &builtins() {
            static Builtins b;
            return b;
        }

        inline Block *&active() {
            static Block *b = NULL;
            return b;
        }

        /* ---- races on shared memory ----
         * Built with `-fsanitize=thread` (the program's translation unit only, linked without the TSan runtime), the
         * compiler calls __tsan_readN/__tsan_writeN before every memory access; the emulator defines them (at the end of
         * this header) and checks each access that falls in the block's shared memory while a kernel thread runs. Per
         * 4-byte word it keeps the last writer and the readers of the current barrier epoch (the span between two
         * __syncthreads of the block): a read of a word another thread wrote in the epoch, or a write of a word another
         * thread read or wrote in it, is a race, reported with the block, both threads, the byte and the barrier that
         * opened the epoch. Warp shuffles do not order shared memory accesses here. */
        const size_t race_words = (BLK_EMU_SHARED_CAPACITY + BLK_EMU_SHARED_GUARD) / 4;
        const uint16_t no_thread = 0xFFFF;
        struct Races {
            size_t bytes;    /* the block's shared bytes while a kernel thread runs, else 0 (no checks) */
            uint32_t epoch;  /* the barrier epoch: distinct for every span of every block of every launch */
            int line;        /* the line of the __syncthreads that opened the epoch (0: the kernel's start) */
            uint16_t thread; /* the running thread */
            const char *kernel;
            uint32_t write_epoch[race_words], read_epoch[race_words];
            uint16_t writer[race_words], reader[race_words], other_reader[race_words];
        };
        inline Races race_state; /* zero-initialized: no constructor that the instrumentation would watch */
        __attribute__((no_sanitize("thread"))) inline Races &races() { return race_state; }

        /* " (at FILE:LINE)" for a return address, through addr2line when the program has line tables, else "". */
        __attribute__((no_sanitize("thread"))) inline void where(const void *pc, char *out, size_t size) {
            out[0] = 0;
            Dl_info info;
            if (!pc || !dladdr(pc, &info) || !info.dli_fbase) return;
            char exe[256] = {0}, command[400];
            ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
            if (length <= 0 || strchr(exe, '\'')) return;
            snprintf(command, sizeof command, "addr2line -e '%s' 0x%lx 2>/dev/null", exe,
                     (unsigned long)((uintptr_t)pc - 1 - (uintptr_t)info.dli_fbase));
            FILE *f = popen(command, "r");
            if (!f) return;
            char line[400] = {0};
            if (fgets(line, sizeof line, f) && line[0] != '?') {
                line[strcspn(line, "\n")] = 0;
                line[strcspn(line, " ")] = 0; /* drops " (discriminator N)" */
                const char *slash = strrchr(line, '/');
                snprintf(out, size, " (at %s)", slash ? slash + 1 : line);
            }
            pclose(f);
        }

        /* Stops with a race: `what` is "r" or "w" (this access) followed by what the other thread did. */
        [[noreturn]] __attribute__((no_sanitize("thread"))) inline void race(const char *what, size_t word, unsigned other,
                                                                               const void *pc) {
            Races &r = races();
            unsigned thread = r.thread;
            r.bytes = 0;
            char at[420];
            where(pc, at, sizeof at);
            char since[64];
            if (r.line > 0)
                snprintf(since, sizeof since, "the __syncthreads on line %d", r.line);
            else
                snprintf(since, sizeof since, "the kernel's start");
            fail(r.kernel, "block %u: a race on shared memory: thread %u %s byte %zu%s, which thread %u %s since %s",
                 builtins().blockIdx.x, thread, what[0] == 'r' ? "reads" : "writes", word * 4, at, other, what + 1, since);
        }

        __attribute__((no_sanitize("thread"))) inline void check_access(const void *p, size_t n, bool write, const void *pc) {
            Races &r = races();
            uintptr_t offset = (uintptr_t)p - (uintptr_t)blk_smem;
            if (offset >= r.bytes || n == 0) return;
            size_t last = (offset + n - 1) / 4;
            if (last >= r.bytes / 4) last = r.bytes / 4 - 1;
            uint32_t e = r.epoch;
            uint16_t t = r.thread;
            for (size_t w = offset / 4; w <= last; w++) {
                if (r.write_epoch[w] == e && r.writer[w] != t) race(write ? "wwrote" : "rwrote", w, r.writer[w], pc);
                if (write) {
                    if (r.read_epoch[w] == e && r.reader[w] != t) race("wread", w, r.reader[w], pc);
                    if (r.read_epoch[w] == e && r.other_reader[w] != no_thread) race("wread", w, r.other_reader[w], pc);
                    r.write_epoch[w] = e;
                    r.writer[w] = t;
                } else if (r.read_epoch[w] != e) {
                    r.read_epoch[w] = e;
                    r.reader[w] = t;
                    r.other_reader[w] = no_thread;
                } else if (r.reader[w] != t && r.other_reader[w] == no_thread) {
                    r.other_reader[w] = t;
                }
            }
        }

        inline unsigned char *stacks(size_t threads) {
            static unsigned char *base = NULL;
            static size_t count = 0;
            if (threads <= count) return base;
            long page = sysconf(_SC_PAGESIZE);
            if (base) munmap(base, count * (stack_bytes + page));
            base = (unsigned char *)mmap(NULL, threads * (stack_bytes + page), PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (base == MAP_FAILED) fail(NULL, "cannot map %zu thread stacks", threads);
            for (size_t t = 0; t < threads; t++) mprotect(base + t * (stack_bytes + page), page, PROT_NONE);
            count = threads;
            return base;
        }

        inline void fiber_main() {
            Block &b = *active();
            (*b.body)();
            b.current->state = exited;
            swapcontext(&b.current->context, &b.scheduler);
        }

        inline void resume(Block &b, unsigned t) {
            b.current = &b.threads[t];
            builtins().threadIdx.x = t;
            races().thread = (uint16_t)t;
            races().bytes = b.shared;
            swapcontext(&b.scheduler, &b.threads[t].context);
            races().bytes = 0;
        }

        inline void wait(Block &b) {
            Thread *t = b.current;
            swapcontext(&t->context, &b.scheduler);
        }

        inline Block &inside(const char *what) {
            Block *b = active();
            if (!b) fail(NULL, "%s called outside a kernel", what);
            return *b;
        }

        /* __syncthreads(): waits until every thread of the block is at the same barrier. */
        inline void syncthreads(int line) {
            Block &b = inside("__syncthreads");
            b.current->state = at_barrier;
            b.current->line = line;
            wait(b);
        }

        /* __shfl_xor_sync(mask, v, lane_mask): v of lane (this lane ^ lane_mask), once every lane of mask is here. */
        template <class T>
        inline T shfl_xor(unsigned mask, T v, int lane_mask, int width = 32) {
            static_assert(sizeof(T) <= 8, "__shfl_xor_sync of a type wider than 8 bytes");
            Block &b = inside("__shfl_xor_sync");
            Thread *t = b.current;
            unsigned index = (unsigned)(t - b.threads.data());
            unsigned lane = index % 32;
            if (!(mask & (1u << lane)))
                fail(b.kernel, "thread %u calls __shfl_xor_sync with mask 0x%08x, which does not name its lane %u",
                     index, mask, lane);
            if (width <= 0 || width > 32 || (width & (width - 1)))
                fail(b.kernel, "__shfl_xor_sync with width %d (a power of two up to 32)", width);
            Warp &w = b.warps[index / 32];
            int parity = (int)(t->shuffles & 1);
            uint64_t bits = 0;
            memcpy(&bits, &v, sizeof(T));
            w.values[parity][lane] = bits;
            t->state = at_shuffle;
            t->mask = mask;
            wait(b);
            unsigned source = lane ^ (unsigned)lane_mask;
            if ((source / (unsigned)width) != (lane / (unsigned)width)) source = lane;
            if (!(mask & (1u << source)))
                fail(b.kernel, "lane %u of warp %u reads lane %u, outside the mask 0x%08x of __shfl_xor_sync", lane,
                     index / 32, source, mask);
            T r;
            memcpy(&r, &w.values[parity][source], sizeof(T));
            t->shuffles++;
            return r;
        }

        /* mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {d}, {a}, {b}, {d}: a warp collective. Every lane deposits
         * its fragments; once all 32 have (release_shuffles), mma_compute forms D = A·B + C from all of them by the
         * PTX ISA's fragment layouts and each lane takes its d. */
        inline void mma_sync(MMAShape shape, float d[4], const uint32_t a[4], const uint32_t b[2]) {
            Block &blk = inside("mma.sync");
            Thread *t = blk.current;
            unsigned index = (unsigned)(t - blk.threads.data());
            unsigned lane = index % 32;
            MMA &m = blk.warps[index / 32].mma[t->shuffles & 1];
            m.shape[lane] = shape;
            for (int r = 0; r < 4; r++) m.a[lane][r] = a[r], m.c[lane][r] = d[r];
            for (int r = 0; r < 2; r++) m.b[lane][r] = b[r];
            t->state = at_shuffle;
            t->mask = 0xffffffffu;
            t->mma = true;
            wait(blk);
            for (int r = 0; r < 4; r++) d[r] = m.d[lane][r];
            t->mma = false;
            t->shuffles++;
        }
        inline void mma_bf16_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
            mma_sync(bf16_m16n8k16, d, a, b);
        }
        /* mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {d}, {a}, {b}, {d}: the same warp collective. */
        inline void mma_tf32_m16n8k8(float d[4], const uint32_t a[4], const uint32_t b[2]) {
            mma_sync(tf32_m16n8k8, d, a, b);
        }

        inline float bf16_to_f32(uint32_t h) {
            uint32_t u = (h & 0xFFFFu) << 16;
            float x;
            memcpy(&x, &u, 4);
            return x;
        }

        /* D = A·B + C of one m16n8k16 from the lanes' fragments. With g = lane / 4 and t = lane % 4 (PTX ISA, "Matrix
         * Fragments for mma.m16n8k16 with floating point type"): A (16x16, row) element a_i, i < 8, of lane is in register
         * i / 2 (bits 16 * (i % 2)), at row g for i in {0, 1, 4, 5} else g + 8, column 2t + (i & 1) (+ 8 for i >= 4);
         * B (16x8, col) element b_i, i < 4, in register i / 2 at row (k) 2t + (i & 1) (+ 8 for i >= 2), column g;
         * C and D element c_i, i < 4, at row g (i < 2) or g + 8, column 2t + (i & 1). The products of bf16 values are
         * exact in f32; each output sums its 16 products in k order in double and adds c, rounded once to f32 (the
         * hardware's internal order and rounding are not specified by PTX; see Docs/CUDA.md). */
        inline void mma_compute_tf32(MMA &m);
        inline void mma_compute(MMA &m, const char *kernel) {
            for (int lane = 1; lane < 32; lane++)
                if (m.shape[lane] != m.shape[0])
                    fail(kernel, "lanes 0 and %d of a warp run different mma.sync shapes: divergence", lane);
            if (m.shape[0] == tf32_m16n8k8) return mma_compute_tf32(m);
            float A[16][16], B[16][8], C[16][8];
            for (int lane = 0; lane < 32; lane++) {
                int g = lane >> 2, t = lane & 3;
                for (int i = 0; i < 8; i++) {
                    int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
                    int col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
                    A[row][col] = bf16_to_f32(m.a[lane][i / 2] >> (16 * (i % 2)));
                }
                for (int i = 0; i < 4; i++) {
                    int row = t * 2 + (i & 1) + (i >= 2 ? 8 : 0);
                    B[row][g] = bf16_to_f32(m.b[lane][i / 2] >> (16 * (i % 2)));
                }
                for (int i = 0; i < 4; i++) C[i < 2 ? g : g + 8][t * 2 + (i & 1)] = m.c[lane][i];
            }
            for (int lane = 0; lane < 32; lane++) {
                int g = lane >> 2, t = lane & 3;
                for (int i = 0; i < 4; i++) {
                    int row = i < 2 ? g : g + 8, col = t * 2 + (i & 1);
                    double s = 0;
                    for (int k = 0; k < 16; k++) s += (double)(A[row][k] * B[k][col]);
                    m.d[lane][i] = (float)(s + (double)C[row][col]);
                }
            }
        }

        inline float tf32_to_f32(uint32_t u) {
            u &= 0xFFFFE000u; /* the mma reads a TF32 operand's sign, exponent and top 10 mantissa bits */
            float x;
            memcpy(&x, &u, 4);
            return x;
        }

        /* D = A·B + C of one m16n8k8 with .tf32 operands from the lanes' fragments. With g = lane / 4 and t = lane % 4
         * (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32): A (16x8, row) element a_i, i < 4, is register i, at
         * row g for i in {0, 2} else g + 8, column t (+ 4 for i >= 2); B (8x8, col) element b_i, i < 2, is register i,
         * at row (k) t + 4i, column g; C and D as for m16n8k16. The products of TF32 values are exact in double; each
         * output sums its 8 products in k order in double and adds c, rounded once to f32. */
        inline void mma_compute_tf32(MMA &m) {
            float A[16][8], B[8][8], C[16][8];
            for (int lane = 0; lane < 32; lane++) {
                int g = lane >> 2, t = lane & 3;
                for (int i = 0; i < 4; i++) A[(i & 1) ? g + 8 : g][t + (i >= 2 ? 4 : 0)] = tf32_to_f32(m.a[lane][i]);
                for (int i = 0; i < 2; i++) B[t + 4 * i][g] = tf32_to_f32(m.b[lane][i]);
                for (int i = 0; i < 4; i++) C[(i >> 1) ? g + 8 : g][2 * t + (i & 1)] = m.c[lane][i];
            }
            for (int lane = 0; lane < 32; lane++) {
                int g = lane >> 2, t = lane & 3;
                for (int i = 0; i < 4; i++) {
                    int row = i < 2 ? g : g + 8, col = t * 2 + (i & 1);
                    double s = 0;
                    for (int k = 0; k < 8; k++) s += (double)A[row][k] * (double)B[k][col];
                    m.d[lane][i] = (float)(s + (double)C[row][col]);
                }
            }
        }

        /* Releases the warps whose lanes have all reached a shuffle; returns whether any was. */
        inline bool release_shuffles(Block &b) {
            bool released = false;
            size_t n = b.threads.size();
            for (size_t w = 0; w * 32 < n; w++) {
                int first = -1;
                for (size_t l = 0; l < 32 && w * 32 + l < n; l++)
                    if (b.threads[w * 32 + l].state == at_shuffle) {
                        first = (int)l;
                        break;
                    }
                if (first < 0) continue;
                unsigned mask = b.threads[w * 32 + first].mask;
                bool complete = true;
                for (size_t l = 0; l < 32; l++) {
                    size_t index = w * 32 + l;
                    bool named = (mask >> l) & 1u;
                    if (!named) continue;
                    if (index >= n)
                        fail(b.kernel, "warp %zu: __shfl_xor_sync mask 0x%08x names lane %zu; the block has %zu threads", w,
                             mask, l, n);
                    Thread &t = b.threads[index];
                    if (t.state == exited)
                        fail(b.kernel, "warp %zu: lane %zu exited while lane %d waits for it at __shfl_xor_sync", w, l,
                             first);
                    if (t.state == at_shuffle && t.mask != mask)
                        fail(b.kernel, "warp %zu: lanes %d and %zu call __shfl_xor_sync with masks 0x%08x and 0x%08x", w,
                             first, l, mask, t.mask);
                    if (t.state == at_shuffle && t.mma != b.threads[w * 32 + first].mma)
                        fail(b.kernel, "warp %zu: lane %d waits at %s while lane %zu waits at %s: divergence", w, first,
                             b.threads[w * 32 + first].mma ? "mma.sync" : "__shfl_xor_sync", l,
                             t.mma ? "mma.sync" : "__shfl_xor_sync");
                    if (t.state != at_shuffle) complete = false;
                }
                if (!complete) continue;
                const Thread &lead = b.threads[w * 32 + first];
                if (lead.mma) mma_compute(b.warps[w].mma[lead.shuffles & 1], b.kernel);
                for (size_t l = 0; l < 32; l++)
                    if ((mask >> l) & 1u) b.threads[w * 32 + l].state = runnable;
                released = true;
            }
            return released;
        }

        /* Runs one block: every thread until all have exited, barriers and shuffles honoured. */
        inline void run_block(Block &b) {
            size_t n = b.threads.size();
            long page = sysconf(_SC_PAGESIZE);
            unsigned char *stack = stacks(n);
            for (size_t t = 0; t < n; t++) {
                Thread &th = b.threads[t];
                th.state = runnable;
                th.line = 0;
                th.mask = 0;
                th.shuffles = 0;
                th.mma = false;
                getcontext(&th.context);
                th.context.uc_stack.ss_sp = stack + t * (stack_bytes + page) + page;
                th.context.uc_stack.ss_size = stack_bytes;
                th.context.uc_link = NULL;
                makecontext(&th.context, (void (*)())fiber_main, 0);
            }
            races().epoch++;
            races().line = 0;
            races().kernel = b.kernel;
            std::vector<unsigned> perm(n);
            for (;;) {
                bool ran = false;
                arrange(perm);
                for (size_t k = 0; k < n; k++)
                    if (b.threads[perm[k]].state == runnable) {
                        resume(b, perm[k]);
                        ran = true;
                    }
                if (ran) continue;
                if (release_shuffles(b)) continue;
                size_t done = 0, waiting = 0;
                int barrier_thread = -1, shuffle_thread = -1, exited_thread = -1;
                for (size_t t = 0; t < n; t++) {
                    State s = b.threads[t].state;
                    if (s == exited) {
                        done++;
                        if (exited_thread < 0) exited_thread = (int)t;
                    } else if (s == at_barrier) {
                        waiting++;
                        if (barrier_thread < 0) barrier_thread = (int)t;
                    } else if (s == at_shuffle && shuffle_thread < 0) {
                        shuffle_thread = (int)t;
                    }
                }
                if (done == n) return;
                if (shuffle_thread >= 0) {
                    int w = shuffle_thread / 32;
                    for (size_t l = 0; l < 32 && w * 32 + l < n; l++) {
                        Thread &t = b.threads[w * 32 + l];
                        if (t.state == at_barrier)
                            fail(b.kernel,
                                 "block %u: lane %d of warp %d waits at __shfl_xor_sync while lane %zu waits at "
                                 "__syncthreads (line %d): divergence",
                                 builtins().blockIdx.x, shuffle_thread % 32, w, l, t.line);
                    }
                    fail(b.kernel, "block %u: warp %d never completes __shfl_xor_sync", builtins().blockIdx.x, w);
                }
                if (done > 0)
                    fail(b.kernel,
                         "block %u: thread %d exited while %zu thread(s) wait at __syncthreads (line %d): divergence",
                         builtins().blockIdx.x, exited_thread, waiting, b.threads[barrier_thread].line);
                int line = b.threads[barrier_thread].line;
                for (size_t t = 0; t < n; t++)
                    if (b.threads[t].line != line)
                        fail(b.kernel,
                             "block %u: thread %d waits at __syncthreads on line %d and thread %zu on line %d: divergence",
                             builtins().blockIdx.x, barrier_thread, line, t, b.threads[t].line);
                races().epoch++; /* every thread has reached the barrier: a new epoch */
                races().line = line;
                for (size_t t = 0; t < n; t++) b.threads[t].state = runnable;
            }
        }

        /* Records a pointer argument of a launch (and whether it points to const), for the checks of `run`. */
        template <class T>
        inline void add_pointer(std::vector<std::pair<const void *, bool>> &out, T value) {
            if constexpr (std::is_pointer<T>::value)
                out.push_back(
                    std::make_pair((const void *)value, std::is_const<typename std::remove_pointer<T>::type>::value));
        }

        inline cudaError_t refuse(cudaError_t e) {
            last_error() = e;
            return e;
        }

        inline void run(const void *function, const char *name, dim3 grid, dim3 block, size_t shared,
                        const std::vector<std::pair<const void *, bool>> &pointers, std::function<void()> &body) {
            size_t blocks = (size_t)grid.x * grid.y * grid.z, threads = (size_t)block.x * block.y * block.z;
            if (blocks == 0 || threads == 0 || threads > 1024 || grid.y > 65535 || grid.z > 65535 || block.z > 64) {
                note("kernel %s: launch of %zu block(s) x %zu thread(s): invalid configuration", name, blocks, threads);
                refuse(cudaErrorInvalidConfiguration);
                return;
            }
            if (grid.y != 1 || grid.z != 1 || block.y != 1 || block.z != 1) {
                fail(name, "the emulator runs one-dimensional launches only (grid %ux%ux%u, block %ux%ux%u)", grid.x,
                     grid.y, grid.z, block.x, block.y, block.z);
            }
            size_t limit = default_shared;
            auto attribute = shared_attribute().find(function);
            if (attribute != shared_attribute().end() && attribute->second > limit) limit = attribute->second;
            if (shared > limit) {
                note("kernel %s: launch asks for %zu bytes of dynamic shared memory; the limit is %zu (raise it with "
                     "cudaFuncSetAttribute, up to %zu on sm_%d)",
                     name, shared, limit, shared_optin_limit(), BLOCKC_EMU_ARCH);
                refuse(cudaErrorInvalidValue);
                return;
            }
            for (size_t k = 0; k < pointers.size(); k++) {
                const void *p = pointers[k].first;
                if (!p) continue;
                auto owner = find(p, 0);
                if (!owner)
                    fail(name, "pointer argument %zu (%p) is not device memory (a host pointer, or freed)", k + 1, p);
                for (size_t j = 0; j < k; j++) {
                    if (!pointers[j].first || (pointers[j].second && pointers[k].second)) continue;
                    if (find(pointers[j].first, 0) == owner)
                        fail(name,
                             "pointer arguments %zu and %zu point into one allocation and one is written: its "
                             "parameters are __restrict__",
                             j + 1, k + 1);
                }
            }
            Block b;
            b.kernel = name;
            b.threads.resize(threads);
            b.warps.resize((threads + 31) / 32);
            b.body = &body;
            b.shared = shared;
            b.current = NULL;
            Builtins &in = builtins();
            in.blockDim = block;
            in.gridDim = grid;
            in.threadIdx.y = in.threadIdx.z = 0;
            in.blockIdx.y = in.blockIdx.z = 0;
            std::vector<unsigned> sequence(blocks);
            arrange(sequence);
            unsigned char *arena = (unsigned char *)blk_smem;
            active() = &b;
            for (size_t k = 0; k < blocks; k++) {
                in.blockIdx.x = sequence[k];
                memset(arena, 0xFF, shared);
                fill_guard(arena + shared, BLK_EMU_SHARED_GUARD);
                run_block(b);
                long damaged = damaged_guard(arena + shared, BLK_EMU_SHARED_GUARD);
                if (damaged >= 0)
                    fail(name, "block %u wrote at byte %ld past the end of its %zu bytes of dynamic shared memory",
                         sequence[k], damaged, shared);
            }
            active() = NULL;
            check_guards(name, "after the launch");
        }

        /* `k<<<grid, block, shared>>>(args)` becomes `blk_emu::launch(k, "k", grid, block, shared)(args)`. */
        template <class... P>
        struct Launch {
            void (*kernel)(P...);
            const char *name;
            dim3 grid, block;
            size_t shared;
            void operator()(P... args) const {
                std::vector<std::pair<const void *, bool>> pointers;
                int unused[] = {0, (add_pointer(pointers, args), 0)...};
                (void)unused;
                void (*k)(P...) = kernel;
                std::function<void()> body = [&]() { k(args...); };
                run((const void *)kernel, name, grid, block, shared, pointers, body);
            }
        };

        template <class... P>
        inline Launch<P...> launch(void (*kernel)(P...), const char *name, dim3 grid, dim3 block, size_t shared = 0) {
            Launch<P...> l = {kernel, name, grid, block, shared};
            return l;
        }

        /* f16 conversions (round to nearest even), for the emitter's BLOCKC_CUDA_EMULATOR path instead of PTX cvt. */
        inline float f16_to_f32(uint16_t h) {
            uint32_t sign = (uint32_t)(h >> 15) << 31, exponent = (h >> 10) & 31u, mantissa = h & 1023u, bits;
            if (exponent == 31) {
                bits = sign | 0x7F800000u | (mantissa << 13) | (mantissa ? 0x400000u : 0u);
            } else if (exponent == 0) {
                float x = ldexpf((float)mantissa, -24);
                memcpy(&bits, &x, 4);
                bits |= sign;
            } else {
                bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
            }
            float x;
            memcpy(&x, &bits, 4);
            return x;
        }

        inline uint16_t f32_to_f16(float x) {
            uint32_t u;
            memcpy(&u, &x, 4);
            uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
            float a = fabsf(x);
            if (a != a) return (uint16_t)(sign | 0x7E00u);
            if (a >= 65520.0f) return (uint16_t)(sign | 0x7C00u);
            if (a < 6.103515625e-05f) { /* subnormal: units of 2^-24, ties to even */
                float q = nearbyintf(a * 16777216.0f);
                return (uint16_t)(sign | (uint16_t)q);
            }
            uint32_t b;
            memcpy(&b, &a, 4);
            uint32_t rounded = b + 0xFFFu + ((b >> 13) & 1u);
            return (uint16_t)(sign | (uint16_t)(((rounded >> 23) - 112) << 10 | ((rounded >> 13) & 1023u)));
        }

        } /* namespace blk_emu */

        #define threadIdx (blk_emu::builtins().threadIdx)
        #define blockIdx (blk_emu::builtins().blockIdx)
        #define blockDim (blk_emu::builtins().blockDim)
        #define gridDim (blk_emu::builtins().gridDim)
        #define warpSize 32
        #define __syncthreads() blk_emu::syncthreads(__LINE__)
        #define __shfl_xor_sync(...) blk_emu::shfl_xor(__VA_ARGS__)

        inline float __uint_as_float(unsigned int u) {
            float x;
            memcpy(&x, &u, 4);
            return x;
        }
        inline unsigned int __float_as_uint(float x) {
            unsigned int u;
            memcpy(&u, &x, 4);
            return u;
        }
        inline float __int_as_float(int i) {
            float x;
            memcpy(&x, &i, 4);
            return x;
        }
        inline int __float_as_int(float x) {
            int i;
            memcpy(&i, &x, 4);
            return i;
        }

        /* ---- the runtime API the generated launchers and harnesses use ---- */
        inline cudaError_t cudaGetDeviceCount(int *count) {
            *count = 1;
            return cudaSuccess;
        }

        inline cudaError_t cudaMalloc(void **pointer, size_t bytes) {
            if (bytes > ((size_t)1 << 40)) return blk_emu::refuse(cudaErrorMemoryAllocation);
            size_t guard = (bytes > blk_emu::min_guard_bytes ? bytes + 255 : blk_emu::min_guard_bytes) / 256 * 256;
            unsigned char *raw = (unsigned char *)aligned_alloc(256, (bytes + 255) / 256 * 256 + 2 * guard);
            if (!raw) return blk_emu::refuse(cudaErrorMemoryAllocation);
            blk_emu::fill_guard(raw, guard);
            memset(raw + guard, 0xFF, bytes); /* NaN */
            blk_emu::fill_guard(raw + guard + bytes, guard);
            unsigned char *p = raw + guard;
            blk_emu::Allocation a = {raw, bytes, guard};
            blk_emu::allocations()[(uintptr_t)p] = a;
            *pointer = p;
            return cudaSuccess;
        }

        inline cudaError_t cudaFree(void *pointer) {
            if (!pointer) return cudaSuccess;
            auto &table = blk_emu::allocations();
            auto it = table.find((uintptr_t)pointer);
            if (it == table.end()) blk_emu::fail(NULL, "cudaFree(%p): not the start of a device allocation", pointer);
            blk_emu::check_guards(NULL, "at cudaFree");
            free(it->second.raw);
            table.erase(it);
            return cudaSuccess;
        }

        inline cudaError_t cudaMemset(void *pointer, int value, size_t bytes) {
            if (!blk_emu::find(pointer, bytes))
                blk_emu::fail(NULL, "cudaMemset(%p, %d, %zu): not within one device allocation", pointer, value, bytes);
            memset(pointer, value, bytes);
            return cudaSuccess;
        }

        inline cudaError_t cudaMemcpy(void *destination, const void *source, size_t bytes, cudaMemcpyKind kind) {
            static const char *names[] = {"cudaMemcpyHostToHost", "cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost",
                                          "cudaMemcpyDeviceToDevice", "cudaMemcpyDefault"};
            if ((int)kind < 0 || (int)kind > 4) return blk_emu::refuse(cudaErrorInvalidMemcpyDirection);
            bool device_destination = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
            bool device_source = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
            if (kind == cudaMemcpyDefault) {
                device_destination = blk_emu::find(destination, 0) != NULL;
                device_source = blk_emu::find(source, 0) != NULL;
            }
            if (device_destination && !blk_emu::find(destination, bytes))
                blk_emu::fail(NULL, "cudaMemcpy(%s, %zu bytes): the destination %p is not %zu bytes of device memory",
                              names[kind], bytes, destination, bytes);
            if (!device_destination && blk_emu::find(destination, 0))
                blk_emu::fail(NULL, "cudaMemcpy(%s): the destination %p is device memory", names[kind], destination);
            if (device_source && !blk_emu::find(source, bytes))
                blk_emu::fail(NULL, "cudaMemcpy(%s, %zu bytes): the source %p is not %zu bytes of device memory",
                              names[kind], bytes, source, bytes);
            if (!device_source && blk_emu::find(source, 0))
                blk_emu::fail(NULL, "cudaMemcpy(%s): the source %p is device memory", names[kind], source);
            memmove(destination, source, bytes);
            return cudaSuccess;
        }

        template <class F>
        inline cudaError_t cudaFuncSetAttribute(F *function, cudaFuncAttribute attribute, int value) {
            if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize) return blk_emu::refuse(cudaErrorInvalidValue);
            if (value < 0 || (size_t)value > blk_emu::shared_optin_limit()) {
                blk_emu::note("cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize, %d): more than sm_%d's "
                              "opt-in limit of %zu bytes",
                              value, BLOCKC_EMU_ARCH, blk_emu::shared_optin_limit());
                return blk_emu::refuse(cudaErrorInvalidValue);
            }
            blk_emu::shared_attribute()[(const void *)function] = (size_t)value;
            return cudaSuccess;
        }

        inline cudaError_t cudaGetLastError(void) {
            cudaError_t e = blk_emu::last_error();
            blk_emu::last_error() = cudaSuccess;
            return e;
        }

        inline cudaError_t cudaPeekAtLastError(void) { return blk_emu::last_error(); }
        inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

        inline const char *cudaGetErrorString(cudaError_t e) {
            switch (e) {
            case cudaSuccess: return "no error";
            case cudaErrorInvalidValue: return "invalid argument";
            case cudaErrorMemoryAllocation: return "out of memory";
            case cudaErrorInvalidConfiguration: return "invalid configuration argument";
            case cudaErrorInvalidDevicePointer: return "invalid device pointer";
            case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
            case cudaErrorNoDevice: return "no CUDA-capable device is detected";
            }
            return "unknown error";
        }

        struct blk_emu_event {
            double ms;
        };
        inline cudaError_t cudaEventCreate(cudaEvent_t *event) {
            *event = new blk_emu_event();
            return cudaSuccess;
        }
        inline cudaError_t cudaEventDestroy(cudaEvent_t event) {
            delete event;
            return cudaSuccess;
        }
        inline cudaError_t cudaEventRecord(cudaEvent_t event, int stream = 0) {
            (void)stream;
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            event->ms = t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
            return cudaSuccess;
        }
        inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
        inline cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t stop) {
            *ms = (float)(stop->ms - start->ms);
            return cudaSuccess;
        }

        /* ---- the callbacks of `-fsanitize=thread` instrumentation (see "races on shared memory" above) ---- */
        #ifdef __SANITIZE_THREAD__
        #define BLK_EMU_HOOK extern "C" __attribute__((weak, no_sanitize("thread"), noinline))
        #define BLK_EMU_CHECK(n, write) blk_emu::check_access(p, n, write, __builtin_return_address(0))
        #define BLK_EMU_ACCESS(n)                                                                                              \
            BLK_EMU_HOOK void __tsan_read##n(void *p) { BLK_EMU_CHECK(n, false); }                                             \
            BLK_EMU_HOOK void __tsan_write##n(void *p) { BLK_EMU_CHECK(n, true); }                                             \
            BLK_EMU_HOOK void __tsan_unaligned_read##n(void *p) { BLK_EMU_CHECK(n, false); }                                   \
            BLK_EMU_HOOK void __tsan_unaligned_write##n(void *p) { BLK_EMU_CHECK(n, true); }                                   \
            BLK_EMU_HOOK void __tsan_volatile_read##n(void *p) { BLK_EMU_CHECK(n, false); }                                    \
            BLK_EMU_HOOK void __tsan_volatile_write##n(void *p) { BLK_EMU_CHECK(n, true); }
        BLK_EMU_ACCESS(1)
        BLK_EMU_ACCESS(2)
        BLK_EMU_ACCESS(4)
        BLK_EMU_ACCESS(8)
        BLK_EMU_ACCESS(16)
        BLK_EMU_HOOK void __tsan_read_range(void *p, unsigned long n) { BLK_EMU_CHECK(n, false); }
        BLK_EMU_HOOK void __tsan_write_range(void *p, unsigned long n) { BLK_EMU_CHECK(n, true); }
        BLK_EMU_HOOK void __tsan_init(void) {}
        BLK_EMU_HOOK void __tsan_func_entry(void *) {}
        BLK_EMU_HOOK void __tsan_func_exit(void) {}
        BLK_EMU_HOOK void __tsan_vptr_update(void **, void *) {}
        BLK_EMU_HOOK void __tsan_vptr_read(void **) {}
        /* Atomics (the guards of function-local statics): plain sequentially consistent operations, unchecked. */
        #define BLK_EMU_ATOMIC(n, T)                                                                                           \
            BLK_EMU_HOOK T __tsan_atomic##n##_load(const volatile T *a, int) { return __atomic_load_n(a, __ATOMIC_SEQ_CST); }  \
            BLK_EMU_HOOK void __tsan_atomic##n##_store(volatile T *a, T v, int) { __atomic_store_n(a, v, __ATOMIC_SEQ_CST); }  \
            BLK_EMU_HOOK T __tsan_atomic##n##_exchange(volatile T *a, T v, int) {                                              \
                return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                                            \
            }                                                                                                                  \
            BLK_EMU_HOOK T __tsan_atomic##n##_fetch_add(volatile T *a, T v, int) {                                             \
                return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);                                                             \
            }                                                                                                                  \
            BLK_EMU_HOOK T __tsan_atomic##n##_fetch_sub(volatile T *a, T v, int) {                                             \
                return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST);                                                             \
            }                                                                                                                  \
            BLK_EMU_HOOK int __tsan_atomic##n##_compare_exchange_strong(volatile T *a, T *c, T v, int, int) {                  \
                return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                        \
            }                                                                                                                  \
            BLK_EMU_HOOK T __tsan_atomic##n##_compare_exchange_val(volatile T *a, T c, T v, int, int) {                        \
                __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                              \
                return c;                                                                                                      \
            }
        BLK_EMU_ATOMIC(8, unsigned char)
        BLK_EMU_ATOMIC(16, unsigned short)
        BLK_EMU_ATOMIC(32, unsigned int)
        BLK_EMU_ATOMIC(64, unsigned long long)
        BLK_EMU_HOOK void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
        BLK_EMU_HOOK void __tsan_atomic_signal_fence(int) {}
        #endif

        #endif

        """#

    /// The host compiler flags that turn on the race check for the translation unit of the generated CUDA (not
    /// the harness): `-fsanitize=thread` makes the compiler call the header's `__tsan_read4`... before every memory
    /// access, `-g1` gives the report a source line. The object is linked without `-fsanitize=thread`, so no TSan
    /// runtime is involved (compile with `-c`, then link it with the harness).
    public static let raceCheckFlags = ["-fsanitize=thread", "-g1"]

    /// `emulator/cuda_runtime.h` in a bundle: makes `#include <cuda_runtime.h>` the emulator under `-I emulator`.
    public static let runtimeShim = """
        /* blockc's CUDA emulator stands in for the CUDA runtime (see blockc_cuda_emu.h). */
        #include "blockc_cuda_emu.h"

        """

    /// The `sed -E` expression that turns `k<<<grid, block, shared>>>(` into `blk_emu::launch(k, "k", grid, block,
    /// shared)(` (what `rewriteLaunches` does).
    public static let launchRewriteSed = #"s/([A-Za-z_][A-Za-z0-9_]*)<<<(.*)>>>\(/blk_emu::launch(\1, "\1", \2)(/"#

    /// The CUDA source with every `k<<<grid, block, shared>>>(args)` launch rewritten as a call of the emulator's
    /// `blk_emu::launch(k, "k", grid, block, shared)(args)`, as `launchRewriteSed` does; other lines unchanged.
    public static func rewriteLaunches(_ source: String) -> String {
        var lines: [Substring] = []
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            guard let open = line.range(of: "<<<"), let close = line.range(of: ">>>(", options: .backwards),
                open.upperBound <= close.lowerBound
            else {
                lines.append(line)
                continue
            }
            let head = line[..<open.lowerBound]
            let name = head.reversed().prefix { $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) }
            let kernel = String(name.reversed())
            guard let first = kernel.first, !first.isNumber else {
                lines.append(line)
                continue
            }
            let prefix = head.dropLast(kernel.count)
            let configuration = line[open.upperBound..<close.lowerBound]
            let rest = line[close.upperBound...]
            lines.append(Substring("\(prefix)blk_emu::launch(\(kernel), \"\(kernel)\", \(configuration))(\(rest)"))
        }
        return lines.joined(separator: "\n")
    }
}
