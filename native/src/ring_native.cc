// ring_native: the fast CPU path of issue 7 (path 2) as a Node-API addon.
//
//   - a fused blockwise attention kernel, forward and backward, on float32 arrays: online softmax
//     (FlashAttention-2 loop order), output + per-row log-sum-exp from the forward, a recomputing
//     backward from (q, k, v, out, lse, dOut); causal masking by global token positions and
//     segment ids (ring/attention/mask.ts's semantics), whole-tile skipping, GQA;
//   - exp over a float32 array (the Exp kernel: softmax over a vocabulary is most of its use);
//   - sgemm: packed, register-blocked micro-kernels (Goto/BLIS loop order): 6×16 on AVX2/FMA,
//     12×32 where the compiler targets AVX-512.
//
// Everything is synchronous: the calling JS thread (the main thread or one ring device's worker)
// blocks while `threads` OS threads (itself included) work. Work is split into independent tasks
// taken from an atomic counter, so no task writes where another does (dQ of the backward pass is
// the one exception: each thread sums into its own buffer, reduced at the end; there tasks go to
// threads round-robin, not from the counter, so every sum has a fixed order and the same inputs
// give the same bits at a given thread count: same seed, same metrics).
//
// Shapes (row-major): q (B, H, Tq, D); k, v (B, Hk, Tk, D); o (B, H, Tq, D); m, l, lse (B, H, Tq);
// positions qPos (Tq), kPos (Tk); segments qSeg (B, Tq), kSeg (B, Tk), optional.
#include <node_api.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define RING_SIMD 1
#else
#define RING_SIMD 0
#endif

namespace {

constexpr float NEG_INF = -std::numeric_limits<float>::infinity();
constexpr float POS_INF = std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------------
// Counted bytes (issue 20): every buffer the addon allocates is charged to the ring device (the
// JS thread: main thread or one device's worker) whose call allocated it, also when a helper
// thread allocates it on that call's behalf, so a device's real memory can include it.

struct ByteCounter {
  std::atomic<int64_t> live{0};
  std::atomic<int64_t> peak{0};
  void add(int64_t n) {
    const int64_t now = live.fetch_add(n) + n;
    int64_t p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
  }
  void sub(int64_t n) { live.fetch_sub(n); }
};

thread_local ByteCounter ownCounter;                // a JS thread's own (one per ring device)
thread_local ByteCounter* activeCounter = nullptr;  // a helper thread: its current caller's

ByteCounter& byteCounter() { return activeCounter ? *activeCounter : ownCounter; }

// ---------------------------------------------------------------------------------------------
// Threads: `fn(task, thread)` over tasks 0..n-1, dynamically scheduled.
//
// Each calling thread (the main thread, or one ring device's worker) keeps its own pool of helper
// threads, started on first need and parked on a condition variable between calls.
// NOTE: starting threads per call cost 20–50 µs each and made small products slower on 2 threads
// than on 1; waking a parked thread is a futex wake. Between rounds a helper may poll for a
// bounded time before it parks (spinMicros below), off by default: an ant-medium step's native
// calls run only 1.0–1.35× faster on 2 threads than on 1, and a parked helper's wake (in a VM, a
// trip through the host) looked like the cause, but polling 300 µs measured 0.97–1.13× the step
// speed of parking at once (steps alternated within one `exp run`, 2-core AMD EPYC, 2026-12-07).
// Polling without bound would steal the core another ring device or process computes on.
constexpr long DEFAULT_SPIN_MICROS = 0;

// How long a helper polls for the next round before it parks, and a caller for its helpers
// before it waits (µs; RING_NATIVE_SPIN_US, helperSpin()): for machines where a wake costs more
// (bench/rl-train --profile compares 0, 50, 200 and 1000 µs step by step).
std::atomic<long> spinMicrosSetting{[] {
  const char* env = std::getenv("RING_NATIVE_SPIN_US");
  return env && *env ? std::max(0L, std::strtol(env, nullptr, 10)) : DEFAULT_SPIN_MICROS;
}()};
static long spinMicros() { return spinMicrosSetting.load(std::memory_order_relaxed); }

class HelperPool {
 public:
  ~HelperPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& th : threads_) th.join();
  }

  // Runs work(0) here and work(1..helpers) on parked helpers; returns when all have finished.
  void run(int helpers, const std::function<void(int)>& work) {
    while (static_cast<int>(threads_.size()) < helpers) {
      const int index = static_cast<int>(threads_.size()) + 1;
      threads_.emplace_back([this, index] { loop(index); });
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &work;
      owner_ = &byteCounter();
      active_ = helpers;
      remaining_.store(helpers, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    work(0);
    spinWhile([this] { return remaining_.load(std::memory_order_acquire) != 0; });
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return remaining_.load(std::memory_order_relaxed) == 0; });
    job_ = nullptr;
  }

 private:
  // Polls `busy` for up to spinMicros() before the caller parks on a condition variable.
  template <class Busy>
  static void spinWhile(Busy&& busy) {
    const long micros = spinMicros();
    if (micros <= 0) return;
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(micros);
    for (int i = 0; busy(); i++) {
#if RING_SIMD
      _mm_pause();
#endif
      if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) return;
    }
  }

  void loop(int index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (spinMicros() > 0) {  // parking at once (the default) keeps the lock
        lock.unlock();
        spinWhile([&] { return generation_.load(std::memory_order_acquire) == seen && !stop_.load(); });
        lock.lock();
      }
      wake_.wait(lock, [&] { return stop_.load() || generation_.load(std::memory_order_relaxed) != seen; });
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_relaxed);
      if (index > active_) continue;  // this round needs fewer helpers
      const std::function<void(int)>* job = job_;
      activeCounter = owner_;  // what this helper allocates is the calling device's
      lock.unlock();
      (*job)(index);
      lock.lock();
      if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_one();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int)>* job_ = nullptr;
  ByteCounter* owner_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  int active_ = 0;
  std::atomic<int> remaining_{0};
  std::atomic<bool> stop_{false};
};

HelperPool& helperPool() {
  thread_local HelperPool pool;
  return pool;
}

template <class F>
void parallelFor(int threads, int tasks, F&& fn) {
  threads = std::max(1, std::min(threads, tasks));
  if (threads == 1) {
    for (int t = 0; t < tasks; t++) fn(t, 0);
    return;
  }
  std::atomic<int> next{0};
  const std::function<void(int)> work = [&](int tid) {
    for (int t; (t = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) fn(t, tid);
  };
  helperPool().run(threads - 1, work);
}

// parallelFor with a fixed task → thread map (task t on thread t mod threads, in order): for work
// whose threads accumulate into their own buffers, where the counter's timing-dependent assignment
// would change the order of float sums between runs.
template <class F>
void parallelForStatic(int threads, int tasks, F&& fn) {
  threads = std::max(1, std::min(threads, tasks));
  if (threads == 1) {
    for (int t = 0; t < tasks; t++) fn(t, 0);
    return;
  }
  const std::function<void(int)> work = [&](int tid) {
    for (int t = tid; t < tasks; t += threads) fn(t, tid);
  };
  helperPool().run(threads - 1, work);
}

// 64-byte aligned float buffer, counted against the device that allocates it.
struct Buf {
  float* p = nullptr;
  size_t bytes = 0;
  ByteCounter* counter = nullptr;
  explicit Buf(size_t n) : bytes(((n * 4 + 63) / 64) * 64 + 64), counter(&byteCounter()) {
    p = static_cast<float*>(std::aligned_alloc(64, bytes));
    counter->add(static_cast<int64_t>(bytes));
  }
  ~Buf() {
    std::free(p);
    counter->sub(static_cast<int64_t>(bytes));
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
};

// ---------------------------------------------------------------------------------------------
// Micro-kernel: C[r][n] (+)= Σ_k A(r, k) · B[k·ldb + n] for r < MR, n < nw ≤ 16.
// A(r, k) = A[r·lda + k] (TA false) or A[k·lda + r] (TA true: A is stored transposed, which is
// also the layout of a packed A panel with lda = MR).

#if RING_SIMD
static inline __m256i tailMask(int n) {  // lanes < n set
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

template <int MR, bool TA>
static inline void ukr(int K, const float* __restrict A, long lda, const float* __restrict B, long ldb,
                       float* __restrict C, long ldc, int nw, bool acc) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm256_setzero_ps();
  if (nw == 16) {
    for (int k = 0; k < K; k++) {
      const float* b = B + k * ldb;
      const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 8
      for (int r = 0; r < MR; r++) {
        const __m256 a = _mm256_broadcast_ss(TA ? A + k * lda + r : A + r * lda + k);
        c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
        c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      float* c = C + r * ldc;
      if (acc) {
        c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(c));
        c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(c + 8));
      }
      _mm256_storeu_ps(c, c0[r]);
      _mm256_storeu_ps(c + 8, c1[r]);
    }
    return;
  }
  // NOTE: masked loads never touch memory past column nw (no reads beyond a row's end).
  const __m256i m0 = tailMask(nw), m1 = tailMask(nw - 8);
  for (int k = 0; k < K; k++) {
    const float* b = B + k * ldb;
    const __m256 b0 = _mm256_maskload_ps(b, m0), b1 = _mm256_maskload_ps(b + 8, m1);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const __m256 a = _mm256_broadcast_ss(TA ? A + k * lda + r : A + r * lda + k);
      c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
    float* c = C + r * ldc;
    if (acc) {
      c0[r] = _mm256_add_ps(c0[r], _mm256_maskload_ps(c, m0));
      c1[r] = _mm256_add_ps(c1[r], _mm256_maskload_ps(c + 8, m1));
    }
    _mm256_maskstore_ps(c, m0, c0[r]);
    _mm256_maskstore_ps(c + 8, m1, c1[r]);
  }
}
#else
template <int MR, bool TA>
static inline void ukr(int K, const float* A, long lda, const float* B, long ldb, float* C, long ldc, int nw,
                       bool acc) {
  float c[MR][16] = {};
  for (int k = 0; k < K; k++)
    for (int r = 0; r < MR; r++) {
      const float a = TA ? A[k * lda + r] : A[r * lda + k];
      for (int n = 0; n < nw; n++) c[r][n] += a * B[k * ldb + n];
    }
  for (int r = 0; r < MR; r++)
    for (int n = 0; n < nw; n++) C[r * ldc + n] = (acc ? C[r * ldc + n] : 0.f) + c[r][n];
}
#endif

#if RING_SIMD && defined(__AVX512F__)
// The same product on 12×32 (or 8×32) tiles of 24 (16) zmm accumulators, where the compiler
// targets AVX-512: a quarter of the broadcasts per FLOP of the 6×16 AVX2 tile, and 12 rows keep
// the loop's instructions per FMA below the front end's width (a 64-row attention tile is 5 × 12
// rows + 4).
template <int MR, bool TA>
static inline void ukr512(int K, const float* __restrict A, long lda, const float* __restrict B, long ldb,
                          float* __restrict C, long ldc, int nw, bool acc) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
  const __mmask16 m0 = nw >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nw) - 1);
  const __mmask16 m1 = nw >= 32 ? 0xFFFF : nw <= 16 ? 0 : static_cast<__mmask16>((1u << (nw - 16)) - 1);
  for (int k = 0; k < K; k++) {
    const float* b = B + k * ldb;
    // NOTE: masked loads never touch memory past column nw
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
      const __m512 a = _mm512_set1_ps(TA ? A[k * lda + r] : A[r * lda + k]);
      c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++) {
    float* c = C + r * ldc;
    if (acc) {
      c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, c));
      c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, c + 16));
    }
    _mm512_mask_storeu_ps(c, m0, c0[r]);
    _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
  }
}

// C (M × N) (+)= A (M × K) · B (K × N), B rows `ldb` apart; A as in `ukr`.
template <bool TA>
static void gemmTile(int M, int N, int K, const float* A, long lda, const float* B, long ldb, float* C, long ldc,
                     bool acc) {
  for (int n0 = 0; n0 < N; n0 += 32) {
    const int nw = std::min(32, N - n0);
    int m0 = 0;
    for (; m0 + 12 <= M; m0 += 12)
      ukr512<12, TA>(K, TA ? A + m0 : A + m0 * lda, lda, B + n0, ldb, C + m0 * ldc + n0, ldc, nw, acc);
    for (; m0 + 8 <= M; m0 += 8)
      ukr512<8, TA>(K, TA ? A + m0 : A + m0 * lda, lda, B + n0, ldb, C + m0 * ldc + n0, ldc, nw, acc);
    const float* a = TA ? A + m0 : A + m0 * lda;
    float* c = C + m0 * ldc + n0;
    switch (M - m0) {
      case 7: ukr512<7, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      case 6: ukr512<6, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      case 5: ukr512<5, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      case 4: ukr512<4, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      case 3: ukr512<3, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      case 2: ukr512<2, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      case 1: ukr512<1, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      default: break;
    }
  }
}
#else
// C (M × N) (+)= A (M × K) · B (K × N), B rows `ldb` apart; A as in `ukr`.
template <bool TA>
static void gemmTile(int M, int N, int K, const float* A, long lda, const float* B, long ldb, float* C, long ldc,
                     bool acc) {
  for (int n0 = 0; n0 < N; n0 += 16) {
    const int nw = std::min(16, N - n0);
    int m0 = 0;
    for (; m0 + 6 <= M; m0 += 6)
      ukr<6, TA>(K, TA ? A + m0 : A + m0 * lda, lda, B + n0, ldb, C + m0 * ldc + n0, ldc, nw, acc);
    const float* a = TA ? A + m0 : A + m0 * lda;
    float* c = C + m0 * ldc + n0;
    switch (M - m0) {
      case 5: ukr<5, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      case 4: ukr<4, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      case 3: ukr<3, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      case 2: ukr<2, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      case 1: ukr<1, TA>(K, a, lda, B + n0, ldb, c, ldc, nw, acc); break;
      default: break;
    }
  }
}
#endif

// ---------------------------------------------------------------------------------------------
// exp on 8 lanes: Cephes expf (e^x = 2^n · e^r, |r| ≤ ln2/2, degree-6 polynomial), relative
// error ≈ 1e-7. Inputs below −87 (and −inf, the mask) give exactly 0.

#if RING_SIMD
static inline __m256 exp8(__m256 x) {
  const __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(n)));
}
#endif

// 2^u on u ∈ [−½, ½]: degree-5 minimax of the relative error (7.5e-8; 2.3e-7 with float32 Horner,
// ≈ 4 ulp), u^0 first. The softmax's exponent: P = 2^(s·scale·log₂e − m·log₂e) folds exp's
// multiply by log₂e into the fmsub that already forms s·scale − m, and the base-2 reduction
// (u = t − round(t)) is exact, where base e needs ln 2 in two parts. 4 ulp is the accuracy of a
// softmax entry, far inside the 1e-4 the kernels are held to (PyTorch's CPU flash attention uses
// a 20-ulp exp).
constexpr float EXP2_POLY[6] = {1.0000000717e+00f, 6.9314696706e-01f, 2.4022119721e-01f,
                                 5.5507132751e-02f, 9.6755415026e-03f, 1.3276471960e-03f};
constexpr float LOG2E = 1.44269504088896341f;

#if RING_SIMD && defined(__AVX512F__)
// exp8 on 16 lanes, same constants and rules (a softmax row of 64 is 4 of these instead of 8).
static inline __m512 exp16(__m512 x) {
  // NOTE: the 2^n by vscalefps (one instruction for exp8's convert, add, shift and multiply); it
  // saturates to 0 / +inf by itself, and the mask keeps inputs below −87 (and −inf, where r would
  // be NaN) exactly 0.
  const __mmask16 kept = ~_mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
  const __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_scalef_ps(kept, y, fx);
}
#endif

// row[c] = exp(row[c]·scale − sub) for c < n (n a multiple of 16); returns their sum.
static inline float expRow(float* row, int n, float scale, float sub) {
#if RING_SIMD && defined(__AVX512F__)
  const __m512 vs = _mm512_set1_ps(scale), vm = _mm512_set1_ps(sub);
  __m512 s0 = _mm512_setzero_ps();
  for (int c = 0; c < n; c += 16) {
    const __m512 p = exp16(_mm512_fmsub_ps(_mm512_loadu_ps(row + c), vs, vm));
    _mm512_storeu_ps(row + c, p);
    s0 = _mm512_add_ps(s0, p);
  }
  return _mm512_reduce_add_ps(s0);
#elif RING_SIMD
  const __m256 vs = _mm256_set1_ps(scale), vm = _mm256_set1_ps(sub);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  for (int c = 0; c < n; c += 16) {
    const __m256 p0 = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(row + c), vs, vm));
    const __m256 p1 = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(row + c + 8), vs, vm));
    _mm256_storeu_ps(row + c, p0);
    _mm256_storeu_ps(row + c + 8, p1);
    s0 = _mm256_add_ps(s0, p0);
    s1 = _mm256_add_ps(s1, p1);
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_add_ps(s0, s1));
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
#else
  float s = 0.f;
  for (int c = 0; c < n; c++) {
    const float x = row[c] * scale - sub;
    row[c] = x < -87.f ? 0.f : std::exp(x);
    s += row[c];
  }
  return s;
#endif
}

static inline float rowMax(const float* row, int n) {
#if RING_SIMD && defined(__AVX512F__)
  __m512 m0 = _mm512_set1_ps(NEG_INF);
  for (int c = 0; c < n; c += 16) m0 = _mm512_max_ps(m0, _mm512_loadu_ps(row + c));
  return _mm512_reduce_max_ps(m0);
#elif RING_SIMD
  __m256 m0 = _mm256_set1_ps(NEG_INF), m1 = m0;
  for (int c = 0; c < n; c += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(row + c));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(row + c + 8));
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_max_ps(m0, m1));
  float m = t[0];
  for (int i = 1; i < 8; i++) m = std::max(m, t[i]);
  return m;
#else
  float m = NEG_INF;
  for (int c = 0; c < n; c++) m = std::max(m, row[c]);
  return m;
#endif
}

// ---------------------------------------------------------------------------------------------
// Attention.

#ifndef ATTN_BQ
#define ATTN_BQ 64
#endif
#ifndef ATTN_BK
#define ATTN_BK 64
#endif
constexpr int BQ = ATTN_BQ;  // query rows per tile
constexpr int BK = ATTN_BK;  // keys per tile (a multiple of 16: score rows are whole vector panels)

struct Attn {
  int B, H, Hk, Tq, Tk, D;
  float scale;
  bool causal;
  const int32_t* qPos;  // (Tq)
  const int32_t* kPos;  // (Tk)
  const int32_t* qSeg;  // (B, Tq) or null
  const int32_t* kSeg;  // (B, Tk) or null
  int threads;
};

struct TileSummary {
  int minPos, maxPos;
  std::vector<int> minSeg, maxSeg;  // per batch row
};

static std::vector<TileSummary> summarise(int T, int tile, int B, const int32_t* pos, const int32_t* seg) {
  std::vector<TileSummary> out;
  for (int t0 = 0; t0 < T; t0 += tile) {
    const int t1 = std::min(T, t0 + tile);
    TileSummary s{std::numeric_limits<int>::max(), std::numeric_limits<int>::min(), {}, {}};
    for (int t = t0; t < t1; t++) s.minPos = std::min(s.minPos, pos[t]), s.maxPos = std::max(s.maxPos, pos[t]);
    if (seg) {
      for (int b = 0; b < B; b++) {
        int lo = std::numeric_limits<int>::max(), hi = std::numeric_limits<int>::min();
        for (int t = t0; t < t1; t++) lo = std::min(lo, seg[b * T + t]), hi = std::max(hi, seg[b * T + t]);
        s.minSeg.push_back(lo);
        s.maxSeg.push_back(hi);
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

enum Vis { NONE = 0, ALL = 1, PARTIAL = 2 };

// Same rules as MaskPlanner.visibility: a tile pair no query of which sees a key is skipped.
static Vis visibility(const Attn& a, const TileSummary& q, const TileSummary& k, int b) {
  if (a.causal && k.minPos > q.maxPos) return NONE;
  if (a.qSeg && (k.minSeg[b] > q.maxSeg[b] || k.maxSeg[b] < q.minSeg[b])) return NONE;
  const bool causalAll = !a.causal || k.maxPos <= q.minPos;
  const bool segAll = !a.qSeg || (q.minSeg[b] == q.maxSeg[b] && k.minSeg[b] == k.maxSeg[b] && q.minSeg[b] == k.minSeg[b]);
  return causalAll && segAll ? ALL : PARTIAL;
}

// Scores S (bq × ldS) of tile (q0.., k0..): −inf where a query may not see a key, and in the
// padding columns bk..bkp.
static void maskTile(const Attn& a, float* S, int ldS, int b, int q0, int bq, int k0, int bk, int bkp, bool partial) {
  for (int r = 0; r < bq; r++) {
    float* row = S + r * ldS;
    if (partial) {
      const int qp = a.qPos[q0 + r];
      const int qs = a.qSeg ? a.qSeg[b * a.Tq + q0 + r] : 0;
      const int32_t* kp = a.kPos + k0;
      const int32_t* ks = a.kSeg ? a.kSeg + b * a.Tk + k0 : nullptr;
      int c = 0;
#if RING_SIMD
      const __m256i vqp = _mm256_set1_epi32(qp), vqs = _mm256_set1_epi32(qs);
      const __m256 ninf = _mm256_set1_ps(NEG_INF);
      for (; c + 8 <= bk; c += 8) {
        __m256i hide = _mm256_setzero_si256();
        if (a.causal)
          hide = _mm256_cmpgt_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kp + c)), vqp);
        if (ks) {
          const __m256i same = _mm256_cmpeq_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ks + c)), vqs);
          hide = _mm256_or_si256(hide, _mm256_xor_si256(same, _mm256_set1_epi32(-1)));
        }
        _mm256_storeu_ps(row + c, _mm256_blendv_ps(_mm256_loadu_ps(row + c), ninf, _mm256_castsi256_ps(hide)));
      }
#endif
      for (; c < bk; c++) {
        const bool visible = (!a.causal || kp[c] <= qp) && (!ks || ks[c] == qs);
        if (!visible) row[c] = NEG_INF;
      }
    }
    for (int c = bk; c < bkp; c++) row[c] = NEG_INF;
  }
}

#if RING_SIMD
// The online softmax on W rows at a time, one lane per row (Lanes16: AVX-512, Lanes8: AVX2).
// `rows` reduces W vectors each over its own lanes at once: out[r] = reduce(v[ORDER[r]]), in
// log2 W levels of shuffle-and-combine (45 instructions at W = 16) instead of W horizontal
// reductions, each a serial chain of ~20 cycles. Feeding the rows in ORDER (a transpose, its own
// inverse) leaves the results in row order.
#if defined(__AVX512F__)
struct Lanes16 {
  using V = __m512;
  static constexpr int W = 16;
  static constexpr int ORDER[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V x) { _mm512_storeu_ps(p, x); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V max(V x, V y) { return _mm512_max_ps(x, y); }
  static V add(V x, V y) { return _mm512_add_ps(x, y); }
  static V sub(V x, V y) { return _mm512_sub_ps(x, y); }
  static V mul(V x, V y) { return _mm512_mul_ps(x, y); }
  static V fmsub(V x, V y, V z) { return _mm512_fmsub_ps(x, y, z); }
  static V exp(V x) { return exp16(x); }
  // 2^t for t ≤ 0 (EXP2_POLY); below −125, −∞ and NaN give exactly 0 (vscalefps does the 2^n).
  static V exp2(V t) {
    const __mmask16 kept = _mm512_cmp_ps_mask(t, _mm512_set1_ps(-125.f), _CMP_GE_OQ);
    const V n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const V u = _mm512_sub_ps(t, n);
    V y = _mm512_set1_ps(EXP2_POLY[5]);
    for (int i = 4; i >= 0; i--) y = _mm512_fmadd_ps(y, u, _mm512_set1_ps(EXP2_POLY[i]));
    return _mm512_maskz_scalef_ps(kept, y, n);
  }
  template <class Op>
  static V rows(const V* v, Op op) {
    V a[8], b[4], c[2];
    for (int i = 0; i < 8; i++)  // 16 lanes per row → 8: 256-bit halves
      a[i] = op(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)  // → 4: 128-bit lanes
      b[i] = op(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++)  // → 2: pairs within 128-bit lanes
      c[i] = op(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44), _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
    return op(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));
  }
};
using SoftmaxLanes = Lanes16;
#else
struct Lanes8 {
  using V = __m256;
  static constexpr int W = 8;
  static constexpr int ORDER[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V x) { _mm256_storeu_ps(p, x); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V max(V x, V y) { return _mm256_max_ps(x, y); }
  static V add(V x, V y) { return _mm256_add_ps(x, y); }
  static V sub(V x, V y) { return _mm256_sub_ps(x, y); }
  static V mul(V x, V y) { return _mm256_mul_ps(x, y); }
  static V fmsub(V x, V y, V z) { return _mm256_fmsub_ps(x, y, z); }
  static V exp(V x) { return exp8(x); }
  // Lanes16::exp2 on 8 lanes: 2^n built in the exponent bits; the mask zeroes t < −125, −∞, NaN.
  static V exp2(V t) {
    const V kept = _mm256_cmp_ps(t, _mm256_set1_ps(-125.f), _CMP_GE_OQ);
    const V n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const V u = _mm256_sub_ps(t, n);
    V y = _mm256_set1_ps(EXP2_POLY[5]);
    for (int i = 4; i >= 0; i--) y = _mm256_fmadd_ps(y, u, _mm256_set1_ps(EXP2_POLY[i]));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(kept, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
  }
  template <class Op>
  static V rows(const V* v, Op op) {
    V a[4], b[2];
    for (int i = 0; i < 4; i++)  // 8 lanes per row → 4: 128-bit halves
      a[i] = op(_mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x20),
                _mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x31));
    for (int i = 0; i < 2; i++)  // → 2
      b[i] = op(_mm256_shuffle_ps(a[2 * i], a[2 * i + 1], 0x44), _mm256_shuffle_ps(a[2 * i], a[2 * i + 1], 0xEE));
    return op(_mm256_shuffle_ps(b[0], b[1], 0x88), _mm256_shuffle_ps(b[0], b[1], 0xDD));
  }
};
using SoftmaxLanes = Lanes8;
#endif

// The online-softmax update (paper §3) of n ≤ W score rows S (ldS apart, bkp columns, a multiple
// of 16) with their state M, L and output rows O (D wide). S becomes P = exp(S·scale − m_new); a
// row that sees no key of the tile keeps its state (P = 0).
template <class X>
static void softmaxRows(float* S, int ldS, int bkp, int n, float scale, float* M, float* L, float* O, int D) {
  using V = typename X::V;
  constexpr int W = X::W;
  const V ninf = X::set1(NEG_INF);
  V part[W];
  for (int i = 0; i < W; i++) {
    const int r = X::ORDER[i];
    V mx = ninf;
    if (r < n)
      for (int c = 0; c < bkp; c += W) mx = X::max(mx, X::load(S + r * ldS + c));
    part[i] = mx;
  }
  alignas(64) float mOld[W], mMax[W], sub[W], alpha[W], sums[W];
  for (int r = 0; r < W; r++) mOld[r] = r < n ? M[r] : NEG_INF;
  const V vOld = X::load(mOld);
  const V mNew = X::max(vOld, X::mul(X::rows(part, [](V x, V y) { return X::max(x, y); }), X::set1(scale)));
  // NOTE: −inf − −inf (no key seen yet, nor now) is NaN; max(NaN, −100) is −100 (x86 max returns
  // its second operand on NaN), whose exp is 0, like exp(−inf)
  X::store(mMax, mNew);
  X::store(alpha, X::exp(X::max(X::sub(vOld, mNew), X::set1(-100.f))));
  // P = 2^(s·scale·log₂e − m_new·log₂e) (EXP2_POLY)
  // NOTE: a row with no key yet subtracts −FLT_MAX, not −inf: its scores (−inf) stay −inf, not NaN
  X::store(sub, X::max(X::mul(mNew, X::set1(LOG2E)), X::set1(-std::numeric_limits<float>::max())));
  const V vs = X::set1(scale * LOG2E);
  for (int i = 0; i < W; i++) {
    const int r = X::ORDER[i];
    V sum = X::set1(0.f);
    if (r < n) {
      const V vm = X::set1(sub[r]);
      float* row = S + r * ldS;
      for (int c = 0; c < bkp; c += W) {
        const V p = X::exp2(X::fmsub(X::load(row + c), vs, vm));
        X::store(row + c, p);
        sum = X::add(sum, p);
      }
    }
    part[i] = sum;
  }
  X::store(sums, X::rows(part, [](V x, V y) { return X::add(x, y); }));
  for (int r = 0; r < n; r++) {
    L[r] = L[r] * alpha[r] + sums[r];
    M[r] = mMax[r];
    // NOTE: rescale by exp(m_old − m_new) only the rows whose max grew
    if (alpha[r] != 1.f) {
      float* orow = O + static_cast<long>(r) * D;
      for (int d = 0; d < D; d++) orow[d] *= alpha[r];
    }
  }
}

// The backward's softmax step on one row of bkp (a multiple of 16) scores, in one pass: S becomes
// P = 2^(s·scale·log₂e − lse·log₂e) (the forward's P: EXP2_POLY), dP becomes dS = scale · P ∘ (dP − Δ).
// lse = +∞ (a row that saw no key) gives P = 0.
template <class X>
static void softmaxGradRow(float* S, float* dP, int bkp, float scale, float lse, float delta) {
  using V = typename X::V;
  const V vs = X::set1(scale * LOG2E), vl = X::set1(lse * LOG2E), vd = X::set1(delta), vg = X::set1(scale);
  for (int c = 0; c < bkp; c += X::W) {
    const V p = X::exp2(X::fmsub(X::load(S + c), vs, vl));
    X::store(S + c, p);
    X::store(dP + c, X::mul(X::mul(p, vg), X::sub(X::load(dP + c), vd)));
  }
}
#endif

// Micro-panels: the products below read their B operand as panels PW columns wide, each stored
// contiguously (K rows of PW floats), so a micro-kernel's B loads walk one stream instead of K
// rows a row stride apart (the tiles' 256–512 B strides put every row in the same few L1 sets).
#if RING_SIMD && defined(__AVX512F__)
constexpr int PW = 32;
#else
constexpr int PW = 16;
#endif
static_assert(BK % PW == 0, "key tiles are whole micro-panels");

// C (M × N) (+)= A · Bp: A (M, K) rows lda apart; Bp = ⌈N / PW⌉ panels of (Kp ≥ K, PW), of which the
// first K rows are read (a key tile's panels keep BK rows when the chunk's last tile is shorter).
static void gemmPanels(int M, int N, int K, const float* A, long lda, const float* Bp, int Kp, float* C, long ldc,
                       bool acc) {
  for (int n0 = 0; n0 < N; n0 += PW)
    gemmTile<false>(M, std::min(PW, N - n0), K, A, lda, Bp + static_cast<long>(n0) * Kp, PW, C + n0, ldc, acc);
}

// Rows X (n ≤ R, D), rows D apart, as B operands in micro-panels, zero-padded to R rows and past
// D: transposed (Xᵀ: R / PW panels of (D, PW)) or not (⌈D / PW⌉ panels of (R, PW)).
#if RING_SIMD
// An 8 × 8 block (rows `ld` apart) transposed: column j of `in` becomes the 8 floats at out + j·ldo.
static inline void transpose8(const float* in, long ld, float* out, long ldo) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(in + i * ld);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);  // rows i, i+1 interleaved: columns 0, 1 | 4, 5
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // columns 2, 3 | 6, 7
  }
  for (int h = 0; h < 8; h += 4) {  // rows h … h+3: column j in the low half, j + 4 in the high
    u[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
    u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
    u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
  for (int j = 0; j < 4; j++) {
    _mm256_storeu_ps(out + j * ldo, _mm256_permute2f128_ps(u[j], u[j + 4], 0x20));
    _mm256_storeu_ps(out + (j + 4) * ldo, _mm256_permute2f128_ps(u[j], u[j + 4], 0x31));
  }
}
#endif

static void packPanelsT(const float* X, int n, int R, int D, float* out) {
  for (int c0 = 0; c0 < R; c0 += PW)
    for (int cb = 0; cb < PW; cb += 8) {
      const int c = c0 + cb;  // keys c … c+7 → columns cb … cb+7 of the panel
      int d0 = 0;
#if RING_SIMD
      // NOTE: whole 8 × 8 blocks by register transposes: the scalar loop's reads are D floats apart
      if (c + 8 <= n)
        for (; d0 + 8 <= D; d0 += 8)
          transpose8(X + static_cast<long>(c) * D + d0, D, out + static_cast<long>(c0) * D + d0 * PW + cb, PW);
#endif
      for (int d = d0; d < D; d++) {
        float* o = out + static_cast<long>(c0) * D + d * PW + cb;
        for (int i = 0; i < 8; i++) o[i] = c + i < n ? X[static_cast<long>(c + i) * D + d] : 0.f;
      }
    }
}
static void packPanels(const float* X, int n, int R, int D, float* out) {
  for (int d0 = 0; d0 < D; d0 += PW)
    for (int r = 0; r < R; r++) {
      float* o = out + static_cast<long>(d0) * R + r * PW;
      if (r < n && d0 + PW <= D) {
        std::memcpy(o, X + static_cast<long>(r) * D + d0, sizeof(float) * PW);
        continue;
      }
      for (int c = 0; c < PW; c++) o[c] = r < n && d0 + c < D ? X[static_cast<long>(r) * D + d0 + c] : 0.f;
    }
}
static long panelFloats(int R, int D) { return static_cast<long>(R) * ((D + PW - 1) / PW * PW); }

// Per kv head, every key tile j (TK keys) as Kᵀ panels then V panels (packPanelsT, packPanels at
// R = TK), tilePanels<TK>(D) floats a tile.
template <int TK>
static long tilePanels(int D) {
  return static_cast<long>(TK) * D + panelFloats(TK, D);
}

template <int TK>
static void packHeads(const float* k, const float* v, float* dst, int BHk, int Tk, int D, int threads) {
  constexpr int BK = TK;
  const int nkt = (Tk + BK - 1) / BK;
  const long tileFloats = tilePanels<TK>(D);
  parallelFor(threads, BHk * nkt, [&](int task, int) {
    const int kvh = task / nkt, j = task % nkt;
    const int k0 = j * BK, bk = std::min(BK, Tk - k0);
    float* kt = dst + (static_cast<long>(kvh) * nkt + j) * tileFloats;
    const long at = (static_cast<long>(kvh) * Tk + k0) * D;
    packPanelsT(k + at, bk, BK, D, kt);
    packPanels(v + at, bk, BK, D, kt + static_cast<long>(BK) * D);
  });
}

// The forward's packed K and V per phase: 8 MiB (one kv head of 16K keys at D = 64).
constexpr long FWD_PACK_FLOATS = 1L << 21;

// The last step of the online softmax on `rows` rows: o /= l; lse = m + log l (a row that saw no
// key: o = 0, lse = +∞, which the backward reads as P = 0).
static void finalizeRows(float* o, const float* m, const float* l, float* lse, long rows, int D) {
  for (long r = 0; r < rows; r++) {
    float* row = o + r * D;
    if (l[r] > 0.f) {
      const float inv = 1.f / l[r];
      for (int d = 0; d < D; d++) row[d] *= inv;
      lse[r] = m[r] + std::log(l[r]);
    } else {
      for (int d = 0; d < D; d++) row[d] = 0.f;
      lse[r] = POS_INF;
    }
  }
}

// Forward over one key/value chunk, updating the running state o (unnormalised), m (running max
// of the scaled scores), l (running denominator) in place (paper §3; FlashAttention-2 Alg. 1).
// With `lse` (B·H·Tq) the chunk is the last: each query tile is finalised (finalizeRows) right
// after its last key tile, while its output rows are still in cache, instead of in a separate
// single-threaded pass over the whole output (m and l are then left as they were).
template <int BQ, int BK>
static void attnForwardTiles(const Attn& a, const float* q, const float* k, const float* v, float* o, float* m,
                             float* l, float* lse) {
  static_assert(BK % PW == 0 && BK % 16 == 0, "key tiles are whole micro-panels and vector rows");
  const int D = a.D, group = a.H / a.Hk;
  const int nqt = (a.Tq + BQ - 1) / BQ, nkt = (a.Tk + BK - 1) / BK;
  const auto qs = summarise(a.Tq, BQ, a.B, a.qPos, a.qSeg);
  const auto ks = summarise(a.Tk, BK, a.B, a.kPos, a.kSeg);
  // NOTE: K and V are packed for a few kv heads at a time (≤ FWD_PACK_FLOATS, at least one head),
  // not for the whole chunk (issue 20: K's size again beside it, 32 MiB at L = 16K); small chunks
  // still pack in one phase, so they keep one pair of parallel calls.
  const int BHk = a.B * a.Hk;
  const long tileFloats = tilePanels<BK>(D), headFloats = nkt * tileFloats;
  const int perPhase = static_cast<int>(std::max(1L, std::min<long>(BHk, FWD_PACK_FLOATS / headFloats)));
  Buf kv(static_cast<size_t>(perPhase) * headFloats);
  std::vector<std::unique_ptr<Buf>> scratch;
  const int threads = std::max(1, std::min(a.threads, a.B * a.H * nqt));
  for (int t = 0; t < threads; t++) scratch.emplace_back(new Buf(BQ * BK));
  for (int h0 = 0; h0 < BHk; h0 += perPhase) {
    const int h1 = std::min(BHk, h0 + perPhase);
    const long at = static_cast<long>(h0) * a.Tk * D;
    packHeads<BK>(k + at, v + at, kv.p, h1 - h0, a.Tk, D, a.threads);
    // the query heads of kv heads h0 … h1 − 1 are bh = h0·group … h1·group − 1
    const int first = h0 * group * nqt;
    // NOTE: last query tiles first: under a causal mask they see the most keys (load balance).
    parallelFor(threads, (h1 - h0) * group * nqt, [&](int t, int tid) {
      const int task = first + t;
      const int bh = task / nqt, i = nqt - 1 - task % nqt;
      const int b = bh / a.H, kvh = b * a.Hk + (bh % a.H) / group;
      const int q0 = i * BQ, bq = std::min(BQ, a.Tq - q0);
      const float* Q = q + (static_cast<long>(bh) * a.Tq + q0) * D;
      float* O = o + (static_cast<long>(bh) * a.Tq + q0) * D;
      float* M = m + static_cast<long>(bh) * a.Tq + q0;
      float* L = l + static_cast<long>(bh) * a.Tq + q0;
      float* S = scratch[tid]->p;
      for (int j = 0; j < nkt; j++) {
        const Vis vis = visibility(a, qs[i], ks[j], b);
        if (vis == NONE) continue;  // NOTE: whole-tile skipping (paper §3)
        const int k0 = j * BK, bk = std::min(BK, a.Tk - k0), bkp = (bk + 15) / 16 * 16;
        const float* kt = kv.p + (static_cast<long>(kvh - h0) * nkt + j) * tileFloats;
        gemmPanels(bq, bkp, D, Q, D, kt, D, S, BK, false);
        if (vis == PARTIAL || bk < bkp) maskTile(a, S, BK, b, q0, bq, k0, bk, bkp, vis == PARTIAL);
#if RING_SIMD
        constexpr int W = SoftmaxLanes::W;
        for (int r0 = 0; r0 < bq; r0 += W)
          softmaxRows<SoftmaxLanes>(S + r0 * BK, BK, bkp, std::min(W, bq - r0), a.scale, M + r0, L + r0,
                                    O + static_cast<long>(r0) * D, D);
#else
        for (int r = 0; r < bq; r++) {
          float* row = S + r * BK;
          const float mx = rowMax(row, bkp);
          if (mx == NEG_INF) {  // this row sees no key of the tile: it adds nothing
            std::memset(row, 0, sizeof(float) * bkp);
            continue;
          }
          const float mNew = std::max(M[r], mx * a.scale);
          // NOTE: rescale by exp(m_old − m_new) when the max grows (paper §3)
          const float alpha = M[r] == NEG_INF ? 0.f : std::exp(M[r] - mNew);
          L[r] = L[r] * alpha + expRow(row, bkp, a.scale, mNew);
          M[r] = mNew;
          if (alpha != 1.f) {
            float* orow = O + r * D;
            for (int d = 0; d < D; d++) orow[d] *= alpha;
          }
        }
#endif
        gemmPanels(bq, D, bk, S, BK, kt + static_cast<long>(BK) * D, BK, O, D, true);
      }
      // NOTE: a phase holds every kv head its query heads read, so this tile has seen all its keys
      if (lse) finalizeRows(O, M, L, lse + static_cast<long>(bh) * a.Tq + q0, bq, D);
    });
  }
}

// Tiles of 128 × 128 where both sides are long: per thread, the products run ≈ 10% faster at D 128
// and ≈ 4% at D 64 (fewer passes over O and Q per key, longer k loops), but a short chunk (the RL
// policy's 256 tokens) loses 12–17% to the larger diagonal tiles and the fewer tasks, so it keeps
// 64 × 64 (one thread, C++ harness, 2026-12-07).
constexpr int LARGE_TILE = 128, LARGE_TILE_MIN_T = 1024;
static bool largeTiles(const Attn& a) { return a.Tq >= LARGE_TILE_MIN_T && a.Tk >= LARGE_TILE_MIN_T; }

static void attnForward(const Attn& a, const float* q, const float* k, const float* v, float* o, float* m, float* l,
                        float* lse = nullptr) {
  if (largeTiles(a))
    attnForwardTiles<LARGE_TILE, LARGE_TILE>(a, q, k, v, o, m, l, lse);
  else
    attnForwardTiles<BQ, BK>(a, q, k, v, o, m, l, lse);
}

// Backward over one key/value chunk: dq += ∂/∂q, dk += ∂/∂k, dv += ∂/∂v of this chunk's part
// of the attention, recomputing P = exp(S·scale − lse) tile by tile (FlashAttention-2 Alg. 2):
//   dV += Pᵀ dO,  dP = dO Vᵀ,  dS = scale · P ∘ (dP − Δ),  dK += dSᵀ Q,  dQ += dS K.
// Tasks are (kv head, key tile), which own their dK, dV rows; dQ is summed per thread (tasks
// assigned round-robin, so the result does not depend on thread timing).
// NOTE: 64 × 64 tiles at every length: 128 × 128 measured 5% slower here (one thread, D 128 L2K
// and D 64 L4K causal), unlike the forward.
static void attnBackward(const Attn& a, const float* q, const float* k, const float* v, const float* dOut,
                         const float* lse, const float* delta, float* dq, float* dk, float* dv) {
  const int D = a.D, group = a.H / a.Hk;
  const int nqt = (a.Tq + BQ - 1) / BQ, nkt = (a.Tk + BK - 1) / BK;
  const int BHk = a.B * a.Hk;
  const auto qs = summarise(a.Tq, BQ, a.B, a.qPos, a.qSeg);
  const auto ks = summarise(a.Tk, BK, a.B, a.kPos, a.kSeg);
  const int threads = std::max(1, std::min(a.threads, BHk * nkt));
  const size_t dqSize = static_cast<size_t>(a.B) * a.H * a.Tq * D;
  // With the round-robin map below, task (j, kvh) runs on thread kvh mod threads whenever
  // threads divides B·Hk: each thread then owns whole kv heads and their query heads' dQ rows, and
  // sums one head's dQ at a time in a head-sized partial (issue 20: a dQ-sized partial per extra
  // thread was 32 MiB at L = 16K). The sums and their order are the same as the general path's.
  const bool ownHeads = threads > 1 && BHk % threads == 0;
  const size_t headSize = static_cast<size_t>(group) * a.Tq * D;  // dQ rows of one kv head's group
  std::vector<std::unique_ptr<Buf>> dqPart;  // threads 1.. sum dQ here; thread 0 into dq itself
  for (int t = 1; t < threads; t++) {
    const size_t n = ownHeads ? headSize : dqSize;
    dqPart.emplace_back(new Buf(n));
    std::memset(dqPart.back()->p, 0, n * sizeof(float));
  }
  // NOTE: each task owns one key tile, so Kᵀ, Vᵀ are packed per task into the thread's own tile
  // (issue 20: packing the whole chunk first held 2 × K's size beside it)
  std::vector<std::unique_ptr<Buf>> sbuf, dpbuf, dkbuf, dvbuf, ktbuf, vtbuf;
  for (int t = 0; t < threads; t++) {
    sbuf.emplace_back(new Buf(BQ * BK));
    dpbuf.emplace_back(new Buf(BQ * BK));
    dkbuf.emplace_back(new Buf(static_cast<size_t>(BK) * D));
    dvbuf.emplace_back(new Buf(static_cast<size_t>(BK) * D));
    ktbuf.emplace_back(new Buf(static_cast<size_t>(D) * BK));
    vtbuf.emplace_back(new Buf(static_cast<size_t>(D) * BK));
  }
  // NOTE: first key tiles first: under a causal mask they are seen by the most queries. Round-robin
  // (not the counter) because dQ is summed per thread: a fixed map keeps the sums' order fixed.
  // one task: key tile j of kv head kvh; dQ rows r go to dQ + (r − dqRow0)·D
  const auto tileTask = [&](int j, int kvh, int tid, float* dQ, long dqRow0) {
    const int b = kvh / a.Hk, hk = kvh % a.Hk;
    const int k0 = j * BK, bk = std::min(BK, a.Tk - k0), bkp = (bk + 15) / 16 * 16;
    const long at = (static_cast<long>(kvh) * a.Tk + k0) * D;
    const float* Kj = k + at;
    float* Ktj = ktbuf[tid]->p;
    float* Vtj = vtbuf[tid]->p;
    packPanelsT(Kj, bk, BK, D, Ktj);
    packPanelsT(v + at, bk, BK, D, Vtj);
    float* S = sbuf[tid]->p;
    float* dP = dpbuf[tid]->p;
    float* dK = dkbuf[tid]->p;
    float* dV = dvbuf[tid]->p;
    bool any = false;
    for (int g = 0; g < group; g++) {
      const int bh = b * a.H + hk * group + g;
      for (int i = 0; i < nqt; i++) {
        const Vis vis = visibility(a, qs[i], ks[j], b);
        if (vis == NONE) continue;
        const int q0 = i * BQ, bq = std::min(BQ, a.Tq - q0);
        const long rowOff = static_cast<long>(bh) * a.Tq + q0;
        const float* Q = q + rowOff * D;
        const float* dO = dOut + rowOff * D;
        gemmPanels(bq, bkp, D, Q, D, Ktj, D, S, BK, false);
        if (vis == PARTIAL || bk < bkp) maskTile(a, S, BK, b, q0, bq, k0, bk, bkp, vis == PARTIAL);
        gemmPanels(bq, bkp, D, dO, D, Vtj, D, dP, BK, false);
        for (int r = 0; r < bq; r++) {
          float* p = S + r * BK;
          float* ds = dP + r * BK;
#if RING_SIMD
          softmaxGradRow<SoftmaxLanes>(p, ds, bkp, a.scale, lse[rowOff + r], delta[rowOff + r]);
#else
          expRow(p, bkp, a.scale, lse[rowOff + r]);
          const float dl = delta[rowOff + r];
          for (int c = 0; c < bkp; c++) ds[c] = a.scale * p[c] * (ds[c] - dl);
#endif
        }
        gemmTile<true>(bk, D, bq, S, BK, dO, D, dV, D, any);
        gemmTile<true>(bk, D, bq, dP, BK, Q, D, dK, D, any);
        gemmTile<false>(bq, D, bk, dP, BK, Kj, D, dQ + (rowOff - dqRow0) * D, D, true);
        any = true;
      }
    }
    if (!any) return;
    float* dkOut = dk + (static_cast<long>(kvh) * a.Tk + k0) * D;
    float* dvOut = dv + (static_cast<long>(kvh) * a.Tk + k0) * D;
    for (int x = 0; x < bk * D; x++) dkOut[x] += dK[x], dvOut[x] += dV[x];
  };
  if (ownHeads) {
    parallelForStatic(threads, threads, [&](int tid, int) {
      for (int kvh = tid; kvh < BHk; kvh += threads) {
        const long row0 = static_cast<long>(kvh) * group * a.Tq;  // the group's rows are contiguous
        if (tid == 0) {
          for (int j = 0; j < nkt; j++) tileTask(j, kvh, 0, dq, 0);
          continue;
        }
        float* part = dqPart[tid - 1]->p;
        std::memset(part, 0, headSize * sizeof(float));
        for (int j = 0; j < nkt; j++) tileTask(j, kvh, tid, part, row0);
        float* dst = dq + row0 * D;
        for (size_t x = 0; x < headSize; x++) dst[x] += part[x];
      }
    });
    return;
  }
  parallelForStatic(threads, BHk * nkt, [&](int task, int tid) {
    tileTask(task / BHk, task % BHk, tid, tid == 0 ? dq : dqPart[tid - 1]->p, 0);
  });
  if (!dqPart.empty()) {
    const int parts = static_cast<int>(dqPart.size());
    const long chunk = 1 << 16;
    const long n = static_cast<long>(dqSize);
    parallelFor(a.threads, static_cast<int>((n + chunk - 1) / chunk), [&](int task, int) {
      const long lo = task * chunk, hi = std::min(n, lo + chunk);
      for (int t = 0; t < parts; t++) {
        const float* src = dqPart[t]->p;
        for (long x = lo; x < hi; x++) dq[x] += src[x];
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// sgemm: C (M × N) = op(A) (M × K) · op(B) (K × N), row-major; op = transpose when flagged.
// Goto's loop order: for column panels (NC) → depth (KC): pack B → row blocks (MC): pack A →
// 16-wide B micro-panels (L1) → 6-row A micro-panels (L2) → micro-kernel.

#ifndef GEMM_KC
#define GEMM_KC 384
#endif
#ifndef GEMM_MC
#define GEMM_MC 144
#endif
constexpr int KC = GEMM_KC, MC = GEMM_MC, NC = 4096;

#if RING_SIMD && defined(__AVX512F__)
// NOTE: where AVX-512 exists, 12×32 tiles in 24 zmm accumulators: half the instructions and
// broadcasts per FLOP of the AVX2 6×16 tile (Zen 4 issues 512-bit FMAs as two 256-bit halves,
// so the peak is the same; the front end and load ports are what this saves).
constexpr int MR = 12, NR = 32;

template <int R>
static void ukrPacked(int K, const float* __restrict A, const float* __restrict B, float* __restrict C, long ldc,
                      int nw, bool acc) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 12
  for (int r = 0; r < R; r++) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int k = 0; k < K; k++) {
    const __m512 b0 = _mm512_loadu_ps(B + k * NR), b1 = _mm512_loadu_ps(B + k * NR + 16);
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
      const __m512 a = _mm512_set1_ps(A[k * MR + r]);
      c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
    }
  }
  const __mmask16 m0 = nw >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nw) - 1);
  const __mmask16 m1 = nw >= 32 ? 0xFFFF : nw <= 16 ? 0 : static_cast<__mmask16>((1u << (nw - 16)) - 1);
#pragma GCC unroll 12
  for (int r = 0; r < R; r++) {
    float* c = C + r * ldc;
    if (acc) {
      c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, c));
      c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, c + 16));
    }
    _mm512_mask_storeu_ps(c, m0, c0[r]);
    _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
  }
}
#else
constexpr int MR = 6, NR = 16;

template <int R>
static void ukrPacked(int K, const float* A, const float* B, float* C, long ldc, int nw, bool acc) {
  ukr<R, true>(K, A, MR, B, NR, C, ldc, nw, acc);
}
#endif

template <int... R>
struct UkrTable {
  using Fn = void (*)(int, const float*, const float*, float*, long, int, bool);
  static constexpr Fn fns[sizeof...(R)] = {&ukrPacked<R + 1>...};
};
template <int... R>
static constexpr auto makeTable(std::integer_sequence<int, R...>) {
  return UkrTable<R...>{};
}
// ukrPacked<mr> for mr = 1..MR
static const auto ukrTable = makeTable(std::make_integer_sequence<int, MR>{});

struct Gemm {
  const float* A;
  const float* B;
  float* C;
  int M, N, K;
  bool ta, tb;
  long lda, ldb, ldc;
  bool acc = false;  // C += op(A) · op(B) instead of C =
  float at(int i, int p) const { return ta ? A[p * lda + i] : A[i * lda + p]; }
  float bt(int p, int j) const { return tb ? B[j * ldb + p] : B[p * ldb + j]; }
};

// Rows i0..i0+mc, depth p0..p0+kc of op(A) → panels of MR rows: Ap[panel][p][MR], zero-padded.
static void packA(const Gemm& g, int i0, int mc, int p0, int kc, float* Ap) {
  for (int ip = 0; ip < mc; ip += MR) {
    const int mr = std::min(MR, mc - ip);
    float* out = Ap + static_cast<long>(ip) * kc;
    if (!g.ta) {
      for (int r = 0; r < MR; r++) {
        if (r >= mr) {
          for (int p = 0; p < kc; p++) out[p * MR + r] = 0.f;
          continue;
        }
        const float* src = g.A + static_cast<long>(i0 + ip + r) * g.lda + p0;
        for (int p = 0; p < kc; p++) out[p * MR + r] = src[p];
      }
    } else {
      for (int p = 0; p < kc; p++) {
        const float* src = g.A + static_cast<long>(p0 + p) * g.lda + i0 + ip;
        for (int r = 0; r < MR; r++) out[p * MR + r] = r < mr ? src[r] : 0.f;
      }
    }
  }
}

// Depth p0..p0+kc, columns j0..j0+nc of op(B) → panels of NR columns: Bp[panel][p][NR].
static void packB(const Gemm& g, int p0, int kc, int j0, int nc, float* Bp) {
  for (int jp = 0; jp < nc; jp += NR) {
    const int nr = std::min(NR, nc - jp);
    float* out = Bp + static_cast<long>(jp) * kc;
    if (!g.tb) {
      for (int p = 0; p < kc; p++) {
        const float* src = g.B + static_cast<long>(p0 + p) * g.ldb + j0 + jp;
        float* dst = out + p * NR;
        for (int c = 0; c < nr; c++) dst[c] = src[c];
        for (int c = nr; c < NR; c++) dst[c] = 0.f;
      }
    } else {
      for (int c = 0; c < NR; c++) {
        if (c >= nr) {
          for (int p = 0; p < kc; p++) out[p * NR + c] = 0.f;
          continue;
        }
        const float* src = g.B + static_cast<long>(j0 + jp + c) * g.ldb + p0;
        for (int p = 0; p < kc; p++) out[p * NR + c] = src[p];
      }
    }
  }
}

// The block rows i0..i1, columns j0..j1 of C, on one thread.
static void gemmBlock(const Gemm& g, int i0, int i1, int j0, int j1) {
  Buf ap(static_cast<size_t>(MC) * KC), bp(static_cast<size_t>(KC) * (std::min(NC, j1 - j0) + NR));
  for (int jc = j0; jc < j1; jc += NC) {
    const int nc = std::min(NC, j1 - jc);
    for (int pc = 0; pc < g.K; pc += KC) {
      const int kc = std::min(KC, g.K - pc);
      packB(g, pc, kc, jc, nc, bp.p);
      for (int ic = i0; ic < i1; ic += MC) {
        const int mc = std::min(MC, i1 - ic);
        packA(g, ic, mc, pc, kc, ap.p);
        for (int jr = 0; jr < nc; jr += NR) {
          const int nr = std::min(NR, nc - jr);
          const float* b = bp.p + static_cast<long>(jr) * kc;
          for (int ir = 0; ir < mc; ir += MR) {
            const int mr = std::min(MR, mc - ir);
            const float* a = ap.p + static_cast<long>(ir) * kc;
            float* c = g.C + static_cast<long>(ic + ir) * g.ldc + jc + jr;
            ukrTable.fns[mr - 1](kc, a, b, c, g.ldc, nr, pc > 0 || g.acc);
          }
        }
      }
    }
  }
}

static void sgemm(const Gemm& g, int threads) {
  if (g.K == 0) {
    for (int i = 0; i < g.M; i++) std::memset(g.C + static_cast<long>(i) * g.ldc, 0, sizeof(float) * g.N);
    return;
  }
  // NOTE: small products stay on the calling thread: starting a thread costs ~20 µs.
  const double flops = 2.0 * g.M * g.N * g.K;
  if (flops < 4e6) threads = 1;
  threads = std::max(1, threads);
  // Split the longer side into one part per thread (whole micro-panels); each part packs its own
  // operands, so threads share nothing and never wait for each other.
  if (g.N >= g.M) {
    const int parts = std::max(1, std::min(threads, (g.N + NR - 1) / NR));
    const int step = ((g.N + parts - 1) / parts + NR - 1) / NR * NR;
    parallelFor(parts, parts, [&](int t, int) {
      const int j0 = t * step, j1 = std::min(g.N, j0 + step);
      if (j0 < j1) gemmBlock(g, 0, g.M, j0, j1);
    });
  } else {
    const int parts = std::max(1, std::min(threads, (g.M + MR - 1) / MR));
    const int step = ((g.M + parts - 1) / parts + MR - 1) / MR * MR;
    parallelFor(parts, parts, [&](int t, int) {
      const int i0 = t * step, i1 = std::min(g.M, i0 + step);
      if (i0 < i1) gemmBlock(g, i0, i1, 0, g.N);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise exp (tfjs's Exp kernel): exp8, with NaN kept and inputs above 87 (where exp8's
// 2^n scaling would overflow its exponent field) done by std::exp, so large inputs give the
// right value or +inf. NOTE: below −87 the result is 0 where IEEE has a subnormal (< 1.7e-38).

// body(lo, hi) over [0, n) in chunks of 32k elements; helper threads only from 128k elements.
template <class F>
static void elementwiseChunks(long n, int threads, F&& body) {
  const long chunk = 1 << 15;
  const int tasks = static_cast<int>((n + chunk - 1) / chunk);
  parallelFor(n < (1 << 17) ? 1 : threads, tasks,
              [&](int task, int) { body(task * chunk, std::min(n, (task + 1) * chunk)); });
}

static void expArray(const float* x, float* y, long n, int threads) {
  elementwiseChunks(n, threads, [&](long lo, long hi) {
    long i = lo;
#if RING_SIMD
    const __m256 big = _mm256_set1_ps(87.0f);
    for (; i + 8 <= hi; i += 8) {
      const __m256 v = _mm256_loadu_ps(x + i);
      _mm256_storeu_ps(y + i, _mm256_blendv_ps(exp8(v), v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
      if (_mm256_movemask_ps(_mm256_cmp_ps(v, big, _CMP_GT_OQ)))
        for (long j = i; j < i + 8; j++)
          if (x[j] > 87.0f) y[j] = std::exp(x[j]);
    }
#endif
    for (; i < hi; i++) y[i] = std::exp(x[i]);
  });
}

// ---------------------------------------------------------------------------------------------
// Elementwise tanh (tfjs's Tanh kernel; on wasm it is scalar libm, ≈ 25 ns an element: the action
// head of an ant-medium policy spent 0.4 ms a step in it). |x| ≥ 0.625: 1 − 2 / (e^{2|x|} + 1) with
// the sign put back, |x| clamped at 9 (tanh(9) rounds to 1 in float32; exp8 must stay below 87);
// |x| < 0.625, where that form cancels: the odd polynomial x + x·x²·P(x²) of Cephes' tanhf, which
// keeps the relative error near 1e-7 down to the smallest inputs. NaN stays NaN.

#if RING_SIMD
// tanh(z) = 1 − 2 / (e^{2z} + 1) for |z| < 43.5 (exp8's range); loses relative accuracy near 0.
static inline __m256 tanh8(__m256 z) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = exp8(_mm256_add_ps(z, z));
  return _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
}
#endif

// y[lo..hi) = tanh(x[lo..hi)) on the calling thread.
static void tanhSpan(const float* x, float* y, long lo, long hi) {
  long i = lo;
#if RING_SIMD
  const __m256 small = _mm256_set1_ps(0.625f), cap = _mm256_set1_ps(9.0f);
  const __m256 signBit = _mm256_set1_ps(-0.0f);
  const __m256 p0 = _mm256_set1_ps(-5.70498872745e-3f), p1 = _mm256_set1_ps(2.06390887954e-2f);
  const __m256 p2 = _mm256_set1_ps(-5.37397155531e-2f), p3 = _mm256_set1_ps(1.33314422036e-1f);
  const __m256 p4 = _mm256_set1_ps(-3.33332819422e-1f);
  for (; i + 8 <= hi; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 a = _mm256_min_ps(_mm256_andnot_ps(signBit, v), cap);  // |x| ≤ 9
    const __m256 large = tanh8(a);
    const __m256 z = _mm256_mul_ps(v, v);
    __m256 p = _mm256_fmadd_ps(p0, z, p1);
    p = _mm256_fmadd_ps(p, z, p2);
    p = _mm256_fmadd_ps(p, z, p3);
    p = _mm256_fmadd_ps(p, z, p4);
    const __m256 poly = _mm256_fmadd_ps(_mm256_mul_ps(p, z), v, v);
    const __m256 signed_ = _mm256_or_ps(large, _mm256_and_ps(signBit, v));
    __m256 r = _mm256_blendv_ps(signed_, poly, _mm256_cmp_ps(a, small, _CMP_LT_OQ));
    r = _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    _mm256_storeu_ps(y + i, r);
  }
#endif
  for (; i < hi; i++) y[i] = std::tanh(x[i]);
}

static void tanhArray(const float* x, float* y, long n, int threads) {
  elementwiseChunks(n, threads, [&](long lo, long hi) { tanhSpan(x, y, lo, hi); });
}

// ---------------------------------------------------------------------------------------------
// The gradient of an embedding lookup: dst (rows, width) = Σ_n [ids[n] = r] · src[n, :]. The wasm
// backend has no gather gradient, and the JS loop it replaces (with the two read-backs and the
// upload around it) took ≈ 1 ms a step at ant-medium (2,048 ids of 64). One thread: ids repeat
// (timesteps, tokens), so rows cannot be split by n without atomics, and the work is ≈ 30 µs.

// Returns −1, or the first k whose id is outside 0 … rows − 1 (dst is then incomplete).
static long scatterAddRows(const int32_t* ids, const float* src, float* dst, long n, long width, long rows) {
  std::fill(dst, dst + rows * width, 0.0f);
  for (long k = 0; k < n; k++) {
    const long r = ids[k];
    if (r < 0 || r >= rows) return k;
    float* out = dst + r * width;
    const float* in = src + k * width;
    for (long d = 0; d < width; d++) out[d] += in[d];
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Token embeddings by modality (the trajectory transformers' input layer): out[n] = feats[n, :w_m] ·
// W_m + b_m for m = types[n], zeros where types[n] is no modality (padding). tfjs formed it as one
// product of a (N, Σ w_m + M) matrix of mostly zeros with the stacked weights (15.6M multiply-adds
// at ant-medium, its four modalities 1 + 105 + 8 + 1 wide), after building and uploading that
// matrix (1 MB). Here the tokens of each modality are gathered and multiplied by its weights alone
// (sgemm, ≈ 4M multiply-adds), and the rows scattered back. The backward gathers the same way:
// dW_m = X_mᵀ · dY_m, db_m = Σ dY_m rows.

struct ModalityTable {
  std::vector<std::pair<float*, size_t>> w, b;  // per modality: (w_m, D) and (D)
  long D;
  int width(int m) const { return static_cast<int>(static_cast<long>(w[m].second) / D); }
};

// The tokens of modality m, in order.
static std::vector<long> tokensOf(const int32_t* types, long N, int m) {
  std::vector<long> idx;
  for (long n = 0; n < N; n++)
    if (types[n] == m) idx.push_back(n);
  return idx;
}

// X (|idx|, wm) = feats[idx, :wm].
static void gatherFeatures(const float* feats, long F, const std::vector<long>& idx, int wm, float* X) {
  for (size_t k = 0; k < idx.size(); k++) std::copy(feats + idx[k] * F, feats + idx[k] * F + wm, X + k * wm);
}

static void modalityEmbed(const float* feats, const int32_t* types, const ModalityTable& t, float* out, long N,
                          long F, int threads) {
  const int M = static_cast<int>(t.w.size());
  const long D = t.D;
  for (long n = 0; n < N; n++)
    if (types[n] < 0 || types[n] >= M) std::fill(out + n * D, out + (n + 1) * D, 0.0f);
  for (int m = 0; m < M; m++) {
    const std::vector<long> idx = tokensOf(types, N, m);
    if (idx.empty()) continue;
    const int Nm = static_cast<int>(idx.size()), wm = t.width(m);
    Buf X(static_cast<size_t>(Nm) * wm), Y(static_cast<size_t>(Nm) * D);
    gatherFeatures(feats, F, idx, wm, X.p);
    Gemm g{};
    g.A = X.p, g.B = t.w[m].first, g.C = Y.p;
    g.M = Nm, g.N = static_cast<int>(D), g.K = wm;
    g.lda = wm, g.ldb = D, g.ldc = D;
    sgemm(g, threads);
    const float* bias = t.b[m].first;
    for (int k = 0; k < Nm; k++) {
      float* o = out + idx[k] * D;
      const float* y = Y.p + static_cast<long>(k) * D;
      for (long d = 0; d < D; d++) o[d] = y[d] + bias[d];
    }
  }
}

// dW_m = Σ_{n: type m} feats[n, :w_m]ᵀ · dy[n], db_m = Σ_{n: type m} dy[n]; t holds the gradients
// (overwritten).
static void modalityEmbedBackward(const float* feats, const int32_t* types, const float* dy, const ModalityTable& t,
                                  long N, long F, int threads) {
  const int M = static_cast<int>(t.w.size());
  const long D = t.D;
  for (int m = 0; m < M; m++) {
    const std::vector<long> idx = tokensOf(types, N, m);
    const int Nm = static_cast<int>(idx.size()), wm = t.width(m);
    float* db = t.b[m].first;
    std::fill(db, db + D, 0.0f);
    if (idx.empty()) {
      std::fill(t.w[m].first, t.w[m].first + t.w[m].second, 0.0f);
      continue;
    }
    Buf X(static_cast<size_t>(Nm) * wm), G(static_cast<size_t>(Nm) * D);
    gatherFeatures(feats, F, idx, wm, X.p);
    for (int k = 0; k < Nm; k++) {
      const float* g = dy + idx[k] * D;
      std::copy(g, g + D, G.p + static_cast<long>(k) * D);
      for (long d = 0; d < D; d++) db[d] += g[d];
    }
    Gemm g{};
    g.A = X.p, g.B = G.p, g.C = t.w[m].first;
    g.M = wm, g.N = static_cast<int>(D), g.K = Nm;
    g.ta = true;
    g.lda = wm, g.ldb = D, g.ldc = D;
    sgemm(g, threads);
  }
}

// Σ_{d < n} f(d) in eight running sums of type T (term d into sum d mod 8), added in a fixed order.
// NOTE: GCC keeps a sum's order, so one running sum is a chain of dependent adds (3–4 cycles each):
// a norm's row statistics took ≈ 120 µs per 2,048 rows of 64, more than the rest of the norm, and
// AdamW's gradient norm (in double) ≈ 0.2 ms of an ant-medium step.
template <class T, class F>
static inline T sum8(long n, F&& f) {
  T s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long d = 0;
  for (; d + 8 <= n; d += 8)
    for (int j = 0; j < 8; j++) s[j] += f(d + j);
  for (int j = 0; d < n; d++, j++) s[j] += f(d);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// ---------------------------------------------------------------------------------------------
// AdamW over every parameter in one call (issue 14): the global gradient norm, the clip, both
// moments and the decoupled-decay update in one pass per tensor, where tfjs ran about a dozen
// kernels per tensor (each a pass over memory and a JS round trip; the profile of an ant-medium
// step counted ~900 of its ~1,500 kernel calls in clip + optimiser). The arithmetic follows
// train/optim.ts AdamW in float32, its constants cast from the caller's doubles, so the two
// agree to rounding; the norm sums in double, in a fixed order (deterministic across threads).

// NOTE: no fused multiply-adds here (GCC contracts by default): tfjs rounds after every op, and
// contraction put the weights 5 ulp from train/optim.ts's after 6 steps (measured)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

struct AdamTensor {
  const float* x;
  float* out;  // the new weights: x itself (in place) or another buffer of n
  const float* g;
  float* m;
  float* v;
  long n;
  bool decay;
};

struct AdamHyper {
  float lr, b1, c1, b2, c2, eps, bc1, bc2, decayFactor;  // c1 = 1 − b1, c2 = 1 − b2
  double maxNorm;
};

static double adamwStep(const std::vector<AdamTensor>& ts, const AdamHyper& h, int threads) {
  struct Task {
    int t;
    long lo, hi;
  };
  const long chunk = 1 << 14;
  std::vector<Task> tasks;
  long total = 0;
  for (int t = 0; t < static_cast<int>(ts.size()); t++) {
    for (long lo = 0; lo < ts[t].n; lo += chunk) tasks.push_back({t, lo, std::min(ts[t].n, lo + chunk)});
    total += ts[t].n;
  }
  const int nt = static_cast<int>(tasks.size());
  // NOTE: one thread below 8M parameters: the pass is memory-bound once vectorised, and a second
  // thread was slower at every size measured (2-core AMD EPYC, idle: 171k parameters 0.09 ms on
  // one thread against 0.27–0.29 on two, 1M 0.88–0.97 against 1.25–1.35, 3.4M 4.1–4.4 against 4.5–5.8)
  const int th = total < (1 << 23) ? 1 : threads;
  std::vector<double> partial(nt, 0.0);
  parallelFor(th, nt, [&](int k, int) {
    const Task& w = tasks[k];
    const float* g = ts[w.t].g + w.lo;
    partial[k] = sum8<double>(w.hi - w.lo, [&](long i) { return static_cast<double>(g[i]) * g[i]; });
  });
  double sq = 0;
  for (double p : partial) sq += p;
  const double norm = std::sqrt(sq);
  const float scale = h.maxNorm > 0 && norm > h.maxNorm ? static_cast<float>(h.maxNorm / (norm + 1e-6)) : 1.0f;
  parallelFor(th, nt, [&](int k, int) {
    const Task& w = tasks[k];
    const AdamTensor& a = ts[w.t];
    // NOTE: every constant and pointer in a local: read through the captured references, they
    // might alias the stores to m and v, and the loop stayed scalar (≈ 0.5 ms of an ant-medium step)
    const float decay = a.decay ? h.decayFactor : 1.0f, sc = scale, lr = h.lr, eps = h.eps;
    const float b1 = h.b1, c1 = h.c1, b2 = h.b2, c2 = h.c2, bc1 = h.bc1, bc2 = h.bc2;
    const float* __restrict gp = a.g;
    float* __restrict mp = a.m;
    float* __restrict vp = a.v;
    const float* x = a.x;  // out may be x itself
    float* out = a.out;
    for (long i = w.lo; i < w.hi; i++) {
      const float g = sc == 1.0f ? gp[i] : gp[i] * sc;
      const float m = mp[i] * b1 + g * c1;
      const float v = vp[i] * b2 + (g * g) * c2;
      mp[i] = m;
      vp[i] = v;
      const float update = (m / bc1) / (std::sqrt(v / bc2) + eps);
      out[i] = x[i] * decay - update * lr;
    }
  });
  return norm;
}

#pragma GCC pop_options

// ---------------------------------------------------------------------------------------------
// The FFN sublayer of a pre-norm block, fused (issue 14): y = x + FFN(norm(x) ∘ gain) over the
// rows of x (N, Dm), with FFN(h) = act(h · up) · down, or SwiGLU (silu(h · gate) ∘ (h · up)) · down.
// tfjs ran it as ~40 kernels a layer (norm, products, GELU's tanh and multiplies, residual, and
// their gradients), each a pass over memory; here each chunk of FFN_CHUNK rows is one task that
// stays in one thread's cache. The backward recomputes a chunk's hidden activations (rows, F)
// from x, so only x is kept between forward and backward (the paper's blockwise FFN). Weight
// gradients sum per thread, tasks going to threads round-robin, and the threads' sums are added
// in thread order: same inputs, same bits at a given thread count.
// Norms are ring/transformer.ts `normalize`: RMSNorm, or LayerNorm without bias, eps inside the
// root. GELU is the tanh form of ring/ffn.ts, tanh(z) = 1 − 2 / (e^{2z} + 1) on exp8.

constexpr int FFN_CHUNK = 128;
enum FfnNorm { NORM_RMS = 0, NORM_LAYER = 1 };
enum FfnAct { ACT_GELU = 0, ACT_RELU = 1, ACT_SWIGLU = 2 };

struct Ffn {
  int N, Dm, F, norm, act;
  float eps;
  const float *x, *gain, *up, *down, *gate;  // gate: SwiGLU only
  int threads;
  // upᵀ (F, Dm), downᵀ (Dm, F), gateᵀ: the backward's transposed weights, set by FfnTransposed
  const float *upT = nullptr, *downT = nullptr, *gateT = nullptr;
};

// C (M, N) (+ when acc) = op(A) · op(B) on the calling thread.
static void gemmOne(const float* A, long lda, bool ta, const float* B, long ldb, bool tb, float* C, long ldc, int M,
                    int N, int K, bool acc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!acc)
      for (int i = 0; i < M; i++) std::memset(C + static_cast<long>(i) * ldc, 0, sizeof(float) * N);
    return;
  }
  // NOTE: one pass over a short depth (the block halves' per-chunk products, K = Dm or the chunk's
  // rows) reads A and B in place: packing them cost about what the arithmetic did at K = 64 (perf
  // of an ant-medium step: packing 10%, the micro-kernel 19%). A transposed B still packs.
  if (K <= KC && !tb) {
    if (ta)
      gemmTile<true>(M, N, K, A, lda, B, ldb, C, ldc, acc);
    else
      gemmTile<false>(M, N, K, A, lda, B, ldb, C, ldc, acc);
    return;
  }
  Gemm g{A, B, C, M, N, K, ta, tb, lda, ldb, ldc, acc};
  gemmBlock(g, 0, M, 0, N);
}

// wᵀ (cols, rows) of w (rows, cols) in a buffer of its own, written once per call for the
// products every row chunk takes with a transposed weight (dy · downᵀ, dQ · wqᵀ …), which then
// read it in place. 16 × 16 tiles keep the reads and the strided writes in cache.
struct Transposed {
  Buf buf;
  Transposed(const float* w, int rows, int cols) : buf(static_cast<size_t>(rows) * cols) {
    constexpr int T = 16;
    for (int r0 = 0; r0 < rows; r0 += T)
      for (int c0 = 0; c0 < cols; c0 += T)
        for (int r = r0; r < std::min(rows, r0 + T); r++)
          for (int c = c0; c < std::min(cols, c0 + T); c++)
            buf.p[static_cast<long>(c) * rows + r] = w[static_cast<long>(r) * cols + c];
  }
};

static constexpr float GELU_K = 0.7978845608028654f;  // √(2/π)
static constexpr float GELU_C = 0.044715f;

#if RING_SIMD
static inline __m256 sigmoid8(__m256 z) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), z))));
}
#endif
static inline float sigmoid1(float z) { return 1.0f / (1.0f + std::exp(-z)); }

// a = act(u) over n elements; SwiGLU: a = silu(g) ∘ u.
static void activate(int act, const float* u, const float* g, float* a, long n) {
  long i = 0;
  if (act == ACT_RELU) {
    for (; i < n; i++) a[i] = u[i] > 0.f ? u[i] : 0.f;
    return;
  }
#if RING_SIMD
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 k = _mm256_set1_ps(GELU_K), c = _mm256_set1_ps(GELU_C);
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(u + i);
    if (act == ACT_GELU) {
      const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
      const __m256 t = tanh8(_mm256_mul_ps(k, _mm256_fmadd_ps(c, x3, x)));
      _mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, t)));
    } else {
      const __m256 z = _mm256_loadu_ps(g + i);
      _mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_mul_ps(z, sigmoid8(z)), x));
    }
  }
#endif
  for (; i < n; i++) {
    if (act == ACT_GELU) {
      const float x = u[i];
      a[i] = 0.5f * x * (1.0f + std::tanh(GELU_K * (x + GELU_C * x * x * x)));
    } else {
      a[i] = g[i] * sigmoid1(g[i]) * u[i];
    }
  }
}

// The gradient through the activation, in place: GELU/ReLU: dA ← dA ∘ act'(u). SwiGLU: dA ← dA ∘
// silu(g) (the gradient of h·up) and g ← dA ∘ u ∘ silu'(g) (of h·gate), silu'(z) = σ(z)(1 + z(1 − σ(z))).
static void activateBackward(int act, const float* u, float* g, float* dA, long n) {
  long i = 0;
  if (act == ACT_RELU) {
    for (; i < n; i++) dA[i] = u[i] > 0.f ? dA[i] : 0.f;
    return;
  }
#if RING_SIMD
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 k = _mm256_set1_ps(GELU_K), c = _mm256_set1_ps(GELU_C), c3 = _mm256_set1_ps(3.0f * GELU_C);
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(u + i), d = _mm256_loadu_ps(dA + i);
    if (act == ACT_GELU) {
      const __m256 x2 = _mm256_mul_ps(x, x);
      const __m256 t = tanh8(_mm256_mul_ps(k, _mm256_fmadd_ps(_mm256_mul_ps(c, x2), x, x)));
      // 0.5(1 + t) + 0.5·x·(1 − t²)·k·(1 + 3c·x²)
      const __m256 sech2 = _mm256_fnmadd_ps(t, t, one);
      const __m256 inner = _mm256_mul_ps(k, _mm256_fmadd_ps(c3, x2, one));
      const __m256 dd = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(half, x), sech2), inner,
                                        _mm256_mul_ps(half, _mm256_add_ps(one, t)));
      _mm256_storeu_ps(dA + i, _mm256_mul_ps(d, dd));
    } else {
      const __m256 z = _mm256_loadu_ps(g + i), s = sigmoid8(z);
      const __m256 silu = _mm256_mul_ps(z, s);
      const __m256 dsilu = _mm256_mul_ps(s, _mm256_fmadd_ps(z, _mm256_sub_ps(one, s), one));
      _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_mul_ps(d, x), dsilu));
      _mm256_storeu_ps(dA + i, _mm256_mul_ps(d, silu));
    }
  }
#endif
  for (; i < n; i++) {
    const float x = u[i], d = dA[i];
    if (act == ACT_GELU) {
      const float t = std::tanh(GELU_K * (x + GELU_C * x * x * x));
      dA[i] = d * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x));
    } else {
      const float z = g[i], s = sigmoid1(z);
      g[i] = d * x * s * (1.0f + z * (1.0f - s));
      dA[i] = d * z * s;
    }
  }
}

// One row: h = n ∘ gain with n = (x − mean) · r (LayerNorm) or x · r (RMSNorm), r = 1/√(mean(c²) + eps);
// n may be null (forward).
static inline float normRow(const float* x, const float* gain, int D, int kind, float eps, float* h, float* n) {
  const float mean =
      kind == NORM_LAYER ? sum8<float>(D, [&](long d) { return x[d]; }) / static_cast<float>(D) : 0.f;
  const float ss = sum8<float>(D, [&](long d) {
    const float c = x[d] - mean;
    return c * c;
  });
  const float r = 1.0f / std::sqrt(ss / static_cast<float>(D) + eps);
  for (int d = 0; d < D; d++) {
    const float v = (x[d] - mean) * r;
    if (n) n[d] = v;
    h[d] = v * gain[d];
  }
  return r;
}

// One row's gradient through the norm: dGain += dh ∘ n; dx = dy + r·(dn − mean(dn)·[layer] − n·mean(dn ∘ n)),
// dn = dh ∘ gain.
static inline void normRowBackward(const float* dh, const float* n, float r, const float* gain, int D, int kind,
                                   const float* dy, float* dx, float* dGain) {
  for (int d = 0; d < D; d++) dGain[d] += dh[d] * n[d];
  const float sdn = kind == NORM_LAYER ? sum8<float>(D, [&](long d) { return dh[d] * gain[d]; }) : 0.f;
  const float sdnn = sum8<float>(D, [&](long d) { return dh[d] * gain[d] * n[d]; });
  const float invD = 1.0f / static_cast<float>(D);
  const float mdn = sdn * invD, mdnn = sdnn * invD;
  for (int d = 0; d < D; d++) dx[d] = dy[d] + r * (dh[d] * gain[d] - mdn - n[d] * mdnn);
}

// Per-thread sums of weight gradients: thread 0 adds straight into the outputs (zeroed first),
// the others into buffers of their own, added to the outputs in thread order at the end, so the
// same inputs give the same bits at a given thread count (tasks go round-robin: parallelForStatic).
class ThreadSums {
 public:
  // outs: the gradient outputs (null ones are skipped), sizes: their lengths
  ThreadSums(int threads, std::vector<float*> outs, std::vector<long> sizes)
      : outs_(std::move(outs)), sizes_(std::move(sizes)), sums_(threads) {
    long total = 0;
    for (size_t i = 0; i < outs_.size(); i++)
      if (outs_[i]) total += sizes_[i];
    for (int t = 0; t < threads; t++) {
      float* p = nullptr;
      if (t > 0) {
        own_.push_back(std::make_unique<Buf>(std::max(1L, total)));
        p = own_.back()->p;
      }
      for (size_t i = 0; i < outs_.size(); i++) {
        float* dst = nullptr;
        if (outs_[i]) {
          dst = t == 0 ? outs_[i] : p;
          if (t > 0) p += sizes_[i];
          std::memset(dst, 0, sizeof(float) * sizes_[i]);
        }
        sums_[t].push_back(dst);
      }
    }
  }
  // thread tid's sum of gradient i
  float* at(int tid, size_t i) const { return sums_[tid][i]; }
  void reduce() {
    for (size_t t = 1; t < sums_.size(); t++)
      for (size_t i = 0; i < outs_.size(); i++)
        if (outs_[i])
          for (long e = 0; e < sizes_[i]; e++) outs_[i][e] += sums_[t][i][e];
  }

 private:
  std::vector<float*> outs_;
  std::vector<long> sizes_;
  std::vector<std::vector<float*>> sums_;
  std::vector<std::unique_ptr<Buf>> own_;
};

static int rowTasks(long rows) { return static_cast<int>((rows + FFN_CHUNK - 1) / FFN_CHUNK); }
// NOTE: small inputs (a rollout's one token) stay on the calling thread
static int rowThreads(double work, int threads, int tasks) {
  return std::max(1, std::min(work < 2e6 ? 1 : threads, tasks));
}

// One chunk: y (rows, Dm) = x + FFN(norm(x) ∘ gain), x and y rows of the chunk (y may not be x).
// With uKeep (rows, F) (and gKeep for SwiGLU) the pre-activations land there
// for the backward to read instead of recomputing them (the block's keepFfn).
static void ffnChunkForward(const Ffn& f, const float* x, int rows, float* y, float* uKeep = nullptr,
                            float* gKeep = nullptr) {
  const int Dm = f.Dm, F = f.F;
  const bool glu = f.act == ACT_SWIGLU, keep = uKeep != nullptr;
  const size_t rf = static_cast<size_t>(rows) * F;
  Buf h(static_cast<size_t>(rows) * Dm), u(keep ? 1 : rf), g(glu && !keep ? rf : 1), a(keep ? rf : 1);
  float* up = keep ? uKeep : u.p;
  float* gp = keep ? gKeep : g.p;
  float* ap = keep ? a.p : u.p;  // without keep the activation overwrites u
  for (int i = 0; i < rows; i++)
    normRow(x + static_cast<long>(i) * Dm, f.gain, Dm, f.norm, f.eps, h.p + static_cast<long>(i) * Dm, nullptr);
  gemmOne(h.p, Dm, false, f.up, F, false, up, F, rows, F, Dm, false);
  if (glu) gemmOne(h.p, Dm, false, f.gate, F, false, gp, F, rows, F, Dm, false);
  activate(f.act, up, gp, ap, static_cast<long>(rf));
  std::memcpy(y, x, sizeof(float) * rows * Dm);
  gemmOne(ap, F, false, f.down, Dm, false, y, Dm, rows, Dm, F, true);  // y = x + a · down
}

// One chunk's backward: dx (rows, Dm) = dy + the norm's gradient; dGain, dUp, dDown, dGate += (sums).
// uKept, gKept: this chunk's pre-activations kept by the forward (null: recomputed from x).
static void ffnChunkBackward(const Ffn& f, const float* x, int rows, const float* dy, float* dx, float* sGain,
                             float* sUp, float* sDown, float* sGate, const float* uKept = nullptr,
                             const float* gKept = nullptr) {
  const int Dm = f.Dm, F = f.F;
  const bool glu = f.act == ACT_SWIGLU, kept = uKept != nullptr;
  const size_t rd = static_cast<size_t>(rows) * Dm, rf = static_cast<size_t>(rows) * F;
  Buf n(rd), h(rd), dh(rd), r(rows), u(kept ? 1 : rf), a(rf), dA(rf), g(glu ? rf : 1);
  const float* up = kept ? uKept : u.p;
  for (int i = 0; i < rows; i++)
    r.p[i] = normRow(x + static_cast<long>(i) * Dm, f.gain, Dm, f.norm, f.eps, h.p + static_cast<long>(i) * Dm,
                     n.p + static_cast<long>(i) * Dm);
  if (!kept) gemmOne(h.p, Dm, false, f.up, F, false, u.p, F, rows, F, Dm, false);
  // the gate's buffer is overwritten by its gradient below: a copy of the kept one
  if (glu && kept) std::memcpy(g.p, gKept, sizeof(float) * rf);
  if (glu && !kept) gemmOne(h.p, Dm, false, f.gate, F, false, g.p, F, rows, F, Dm, false);
  activate(f.act, up, g.p, a.p, static_cast<long>(rf));
  gemmOne(dy, Dm, false, f.downT, F, false, dA.p, F, rows, F, Dm, false);  // dA = dy · downᵀ
  gemmOne(a.p, F, true, dy, Dm, false, sDown, Dm, F, Dm, rows, true);     // dDown += aᵀ · dy
  activateBackward(f.act, up, g.p, dA.p, static_cast<long>(rf));          // dA → d(h·up), g → d(h·gate)
  gemmOne(h.p, Dm, true, dA.p, F, false, sUp, F, Dm, F, rows, true);      // dUp += hᵀ · d(h·up)
  gemmOne(dA.p, F, false, f.upT, Dm, false, dh.p, Dm, rows, Dm, F, false);  // dh = d(h·up) · upᵀ
  if (glu) {
    gemmOne(h.p, Dm, true, g.p, F, false, sGate, F, Dm, F, rows, true);
    gemmOne(g.p, F, false, f.gateT, Dm, false, dh.p, Dm, rows, Dm, F, true);
  }
  for (int i = 0; i < rows; i++) {
    const long o = static_cast<long>(i) * Dm;
    normRowBackward(dh.p + o, n.p + o, r.p[i], f.gain, Dm, f.norm, dy + o, dx + o, sGain);
  }
}

// An Ffn with its weights also transposed (once per backward call, read by every chunk).
struct FfnTransposed {
  Ffn f;
  Transposed up, down;
  std::unique_ptr<Transposed> gate;
  explicit FfnTransposed(const Ffn& in)
      : f(in), up(in.up, in.Dm, in.F), down(in.down, in.F, in.Dm),
        gate(in.act == ACT_SWIGLU ? std::make_unique<Transposed>(in.gate, in.Dm, in.F) : nullptr) {
    f.upT = up.buf.p;
    f.downT = down.buf.p;
    f.gateT = gate ? gate->buf.p : nullptr;
  }
};

static void ffnForward(const Ffn& f, float* y) {
  const int tasks = rowTasks(f.N);
  parallelFor(rowThreads(static_cast<double>(f.N) * f.Dm * f.F, f.threads, tasks), tasks, [&](int task, int) {
    const long r0 = static_cast<long>(task) * FFN_CHUNK;
    ffnChunkForward(f, f.x + r0 * f.Dm, static_cast<int>(std::min<long>(FFN_CHUNK, f.N - r0)), y + r0 * f.Dm);
  });
}

// dx (N, Dm) = ∂/∂x; dGain (Dm), dUp (Dm, F), dDown (F, Dm), dGate (Dm, F) are written (not added).
static void ffnBackward(const Ffn& fIn, const float* dy, float* dx, float* dGain, float* dUp, float* dDown,
                        float* dGate) {
  const FfnTransposed t(fIn);
  const Ffn& f = t.f;
  const int tasks = rowTasks(f.N);
  const int threads = rowThreads(static_cast<double>(f.N) * f.Dm * f.F, f.threads, tasks);
  const long nw = static_cast<long>(f.Dm) * f.F;
  ThreadSums sums(threads, {dGain, dUp, dDown, f.act == ACT_SWIGLU ? dGate : nullptr}, {f.Dm, nw, nw, nw});
  parallelForStatic(threads, tasks, [&](int task, int tid) {
    const long r0 = static_cast<long>(task) * FFN_CHUNK, o = r0 * f.Dm;
    ffnChunkBackward(f, f.x + o, static_cast<int>(std::min<long>(FFN_CHUNK, f.N - r0)), dy + o, dx + o,
                     sums.at(tid, 0), sums.at(tid, 1), sums.at(tid, 2), sums.at(tid, 3));
  });
  sums.reduce();
}

// ---------------------------------------------------------------------------------------------
// The rest of a pre-norm block around its attention (issue 14), so that a block is two native
// calls and the attention between them, forward and backward:
//   qkv:  q, k, v = RoPE(norm(x) ∘ gain · wq), RoPE(norm(x) ∘ gain · wk), norm(x) ∘ gain · wv, in
//         head layout (B, H|Hk, T, Dh); RoPE (rotate_half, ring/transformer.ts applyRope) by the
//         caller's cos, sin tables (T, Dh), or none;
//   post: y = x1 + FFN(norm(x1) ∘ gain2), x1 = x + merge(o) · wo, merge: (B, H, T, Dh) → (B·T, H·Dh).
// Rows are (b, t) pairs, B·T of them, in chunks of FFN_CHUNK as the FFN sublayer's.

struct Qkv {
  int B, T, Dm, H, Hk, Dh, norm;
  float eps;
  const float *x, *gain, *wq, *wk, *wv, *cos, *sin;  // cos, sin: null without RoPE
  int threads;
};

// dst (Dh) = RoPE(src) at table row `t`: src·cos + rotate_half(src)·sin, rotate_half(s) = (−s2, s1).
static inline void ropeRow(const float* __restrict src, const float* cos, const float* sin, int Dh,
                           float* __restrict dst) {
  const int half = Dh / 2;
  for (int i = 0; i < half; i++) {
    dst[i] = src[i] * cos[i] - src[i + half] * sin[i];
    dst[i + half] = src[i + half] * cos[i + half] + src[i] * sin[i + half];
  }
}
// Its transpose (the backward): dst = d·cos + rotate_halfᵀ(d·sin), rotate_halfᵀ(z) = (z2, −z1).
static inline void ropeRowBackward(const float* __restrict d, const float* cos, const float* sin, int Dh,
                                   float* __restrict dst) {
  const int half = Dh / 2;
  for (int i = 0; i < half; i++) {
    dst[i] = d[i] * cos[i] + d[i + half] * sin[i + half];
    dst[i + half] = d[i + half] * cos[i + half] - d[i] * sin[i];
  }
}

// rows (rows, heads·Dh) of chunk rows r0… ↔ head layout (B, heads, T, Dh), RoPE'd when cos is given.
static void toHeads(const float* rows, int n, long r0, int T, int heads, int Dh, const float* cos, const float* sin,
                    float* out) {
  for (int i = 0; i < n; i++) {
    const long r = r0 + i, b = r / T, t = r % T;
    for (int h = 0; h < heads; h++) {
      const float* src = rows + (static_cast<long>(i) * heads + h) * Dh;
      float* dst = out + ((b * heads + h) * T + t) * Dh;
      if (cos)
        ropeRow(src, cos + t * Dh, sin + t * Dh, Dh, dst);
      else
        std::memcpy(dst, src, sizeof(float) * Dh);
    }
  }
}
static void fromHeads(const float* in, int n, long r0, int T, int heads, int Dh, const float* cos, const float* sin,
                      float* rows) {
  for (int i = 0; i < n; i++) {
    const long r = r0 + i, b = r / T, t = r % T;
    for (int h = 0; h < heads; h++) {
      const float* src = in + ((b * heads + h) * T + t) * Dh;
      float* dst = rows + (static_cast<long>(i) * heads + h) * Dh;
      if (cos)
        ropeRowBackward(src, cos + t * Dh, sin + t * Dh, Dh, dst);
      else
        std::memcpy(dst, src, sizeof(float) * Dh);
    }
  }
}

static void qkvForward(const Qkv& a, float* q, float* k, float* v) {
  const long N = static_cast<long>(a.B) * a.T;
  const int Wq = a.H * a.Dh, Wk = a.Hk * a.Dh, Dm = a.Dm;
  const int tasks = rowTasks(N);
  parallelFor(rowThreads(static_cast<double>(N) * Dm * (Wq + 2 * Wk), a.threads, tasks), tasks, [&](int task, int) {
    const long r0 = static_cast<long>(task) * FFN_CHUNK;
    const int rows = static_cast<int>(std::min<long>(FFN_CHUNK, N - r0));
    Buf h(static_cast<size_t>(rows) * Dm), p(static_cast<size_t>(rows) * std::max(Wq, Wk));
    for (int i = 0; i < rows; i++)
      normRow(a.x + (r0 + i) * Dm, a.gain, Dm, a.norm, a.eps, h.p + static_cast<long>(i) * Dm, nullptr);
    gemmOne(h.p, Dm, false, a.wq, Wq, false, p.p, Wq, rows, Wq, Dm, false);
    toHeads(p.p, rows, r0, a.T, a.H, a.Dh, a.cos, a.sin, q);
    gemmOne(h.p, Dm, false, a.wk, Wk, false, p.p, Wk, rows, Wk, Dm, false);
    toHeads(p.p, rows, r0, a.T, a.Hk, a.Dh, a.cos, a.sin, k);
    gemmOne(h.p, Dm, false, a.wv, Wk, false, p.p, Wk, rows, Wk, Dm, false);
    toHeads(p.p, rows, r0, a.T, a.Hk, a.Dh, nullptr, nullptr, v);
  });
}

// dx (B·T, Dm) += the gradient through the norm and projections; dGain, dWq, dWk, dWv written.
static void qkvBackward(const Qkv& a, const float* dq, const float* dk, const float* dv, float* dx, float* dGain,
                        float* dWq, float* dWk, float* dWv) {
  const long N = static_cast<long>(a.B) * a.T;
  const int Wq = a.H * a.Dh, Wk = a.Hk * a.Dh, Dm = a.Dm;
  const int tasks = rowTasks(N);
  const int threads = rowThreads(static_cast<double>(N) * Dm * (Wq + 2 * Wk), a.threads, tasks);
  ThreadSums sums(threads, {dGain, dWq, dWk, dWv},
                  {Dm, static_cast<long>(Dm) * Wq, static_cast<long>(Dm) * Wk, static_cast<long>(Dm) * Wk});
  const Transposed wqT(a.wq, Dm, Wq), wkT(a.wk, Dm, Wk), wvT(a.wv, Dm, Wk);
  parallelForStatic(threads, tasks, [&](int task, int tid) {
    const long r0 = static_cast<long>(task) * FFN_CHUNK;
    const int rows = static_cast<int>(std::min<long>(FFN_CHUNK, N - r0));
    const size_t rd = static_cast<size_t>(rows) * Dm;
    Buf n(rd), h(rd), dh(rd), r(rows), p(static_cast<size_t>(rows) * std::max(Wq, Wk));
    for (int i = 0; i < rows; i++)
      r.p[i] = normRow(a.x + (r0 + i) * Dm, a.gain, Dm, a.norm, a.eps, h.p + static_cast<long>(i) * Dm,
                       n.p + static_cast<long>(i) * Dm);
    fromHeads(dq, rows, r0, a.T, a.H, a.Dh, a.cos, a.sin, p.p);
    gemmOne(h.p, Dm, true, p.p, Wq, false, sums.at(tid, 1), Wq, Dm, Wq, rows, true);  // dWq += hᵀ · dQ
    gemmOne(p.p, Wq, false, wqT.buf.p, Dm, false, dh.p, Dm, rows, Dm, Wq, false);     // dh = dQ · wqᵀ
    fromHeads(dk, rows, r0, a.T, a.Hk, a.Dh, a.cos, a.sin, p.p);
    gemmOne(h.p, Dm, true, p.p, Wk, false, sums.at(tid, 2), Wk, Dm, Wk, rows, true);
    gemmOne(p.p, Wk, false, wkT.buf.p, Dm, false, dh.p, Dm, rows, Dm, Wk, true);
    fromHeads(dv, rows, r0, a.T, a.Hk, a.Dh, nullptr, nullptr, p.p);
    gemmOne(h.p, Dm, true, p.p, Wk, false, sums.at(tid, 3), Wk, Dm, Wk, rows, true);
    gemmOne(p.p, Wk, false, wvT.buf.p, Dm, false, dh.p, Dm, rows, Dm, Wk, true);
    for (int i = 0; i < rows; i++) {
      const long o = static_cast<long>(i) * Dm;
      float* dxr = dx + (r0 + i) * Dm;
      normRowBackward(dh.p + o, n.p + o, r.p[i], a.gain, Dm, a.norm, dxr, dxr, sums.at(tid, 0));
    }
  });
  sums.reduce();
}

struct Post {
  int B, T, H, Dh;
  const float *o, *wo;  // o (B, H, T, Dh), wo (H·Dh, Dm)
  Ffn ffn;              // ffn.x: the block's x (B·T, Dm); ffn.N = B·T
};

// x1 rows of a chunk: x + merge(o) · wo; `merged` (rows, H·Dh) keeps merge(o).
static void postResidual(const Post& p, long r0, int rows, float* merged, float* x1) {
  const int Dm = p.ffn.Dm, W = p.H * p.Dh;
  fromHeads(p.o, rows, r0, p.T, p.H, p.Dh, nullptr, nullptr, merged);
  std::memcpy(x1, p.ffn.x + r0 * Dm, sizeof(float) * rows * Dm);
  gemmOne(merged, W, false, p.wo, Dm, false, x1, Dm, rows, Dm, W, true);
}

static double postWork(const Post& p) {
  return static_cast<double>(p.ffn.N) * p.ffn.Dm * (p.ffn.F + p.H * p.Dh);
}

// The FFN side's activations a forward keeps for its backward (the block's keepFfn): x1 (N, Dm)
// and the pre-activations u (N, F), g (N, F, SwiGLU only). All null: the backward recomputes them.
struct PostKeep {
  float *x1 = nullptr, *u = nullptr, *g = nullptr;
  // the rows of the chunk starting at row r0 (null stays null)
  PostKeep chunk(long r0, int Dm, int F) const {
    return {x1 ? x1 + r0 * Dm : nullptr, u ? u + r0 * F : nullptr, g ? g + r0 * F : nullptr};
  }
};

static void postForward(const Post& p, float* y, const PostKeep& keep = {}) {
  const int tasks = rowTasks(p.ffn.N), Dm = p.ffn.Dm, F = p.ffn.F;
  parallelFor(rowThreads(postWork(p), p.ffn.threads, tasks), tasks, [&](int task, int) {
    const long r0 = static_cast<long>(task) * FFN_CHUNK;
    const int rows = static_cast<int>(std::min<long>(FFN_CHUNK, p.ffn.N - r0));
    const PostKeep k = keep.chunk(r0, Dm, F);
    Buf merged(static_cast<size_t>(rows) * p.H * p.Dh), x1(k.x1 ? 1 : static_cast<size_t>(rows) * Dm);
    float* x1p = k.x1 ? k.x1 : x1.p;
    postResidual(p, r0, rows, merged.p, x1p);
    ffnChunkForward(p.ffn, x1p, rows, y + r0 * Dm, k.u, k.g);
  });
}

// dx (B·T, Dm) and dO (B, H, T, Dh) written; dWo, dGain, dUp, dDown, dGate written.
static void postBackward(const Post& p, const float* dy, float* dx, float* dO, float* dWo, float* dGain, float* dUp,
                         float* dDown, float* dGate, const PostKeep& kept = {}) {
  const FfnTransposed t(p.ffn);
  const Ffn& f = t.f;
  const int tasks = rowTasks(f.N), Dm = f.Dm, W = p.H * p.Dh;
  const int threads = rowThreads(postWork(p), f.threads, tasks);
  const long nw = static_cast<long>(Dm) * f.F;
  ThreadSums sums(threads, {dGain, dUp, dDown, f.act == ACT_SWIGLU ? dGate : nullptr, dWo},
                  {Dm, nw, nw, nw, static_cast<long>(W) * Dm});
  const Transposed woT(p.wo, W, Dm);
  parallelForStatic(threads, tasks, [&](int task, int tid) {
    const long r0 = static_cast<long>(task) * FFN_CHUNK;
    const int rows = static_cast<int>(std::min<long>(FFN_CHUNK, f.N - r0));
    const PostKeep k = kept.chunk(r0, Dm, f.F);
    Buf merged(static_cast<size_t>(rows) * W), x1(k.x1 ? 1 : static_cast<size_t>(rows) * Dm);
    const float* x1p = k.x1 ? k.x1 : x1.p;
    if (k.x1)
      fromHeads(p.o, rows, r0, p.T, p.H, p.Dh, nullptr, nullptr, merged.p);  // dWo still needs merge(o)
    else
      postResidual(p, r0, rows, merged.p, x1.p);
    float* dxr = dx + r0 * Dm;  // dx1 = dx: x1 = x + …
    ffnChunkBackward(f, x1p, rows, dy + r0 * Dm, dxr, sums.at(tid, 0), sums.at(tid, 1), sums.at(tid, 2),
                     sums.at(tid, 3), k.u, k.g);
    gemmOne(merged.p, W, true, dxr, Dm, false, sums.at(tid, 4), Dm, W, Dm, rows, true);  // dWo += mergedᵀ · dx1
    gemmOne(dxr, Dm, false, woT.buf.p, W, false, merged.p, W, rows, W, Dm, false);       // d merged = dx1 · woᵀ
    toHeads(merged.p, rows, r0, p.T, p.H, p.Dh, nullptr, nullptr, dO);
  });
  sums.reduce();
}

// ---------------------------------------------------------------------------------------------
// A norm on its own (issue 14): y = norm(x) ∘ gain over rows of D, and its backward recomputing
// each row's statistics from x, so the op keeps only x (tfjs autodiff of the norm's ops kept about
// three (N, D) tensors through the whole backward: the peak of an LM step after its final norm).

static void normForward(const float* x, const float* gain, float* y, long N, int D, int kind, float eps,
                        int threads) {
  const int tasks = rowTasks(N);
  parallelFor(rowThreads(static_cast<double>(N) * D * 8, threads, tasks), tasks, [&](int task, int) {
    const long r0 = static_cast<long>(task) * FFN_CHUNK, r1 = std::min<long>(N, r0 + FFN_CHUNK);
    for (long r = r0; r < r1; r++) normRow(x + r * D, gain, D, kind, eps, y + r * D, nullptr);
  });
}

// dx (N, D) = ∂/∂x, dGain (D) written (not added).
static void normBackward(const float* x, const float* gain, const float* dy, float* dx, float* dGain, long N, int D,
                         int kind, float eps, int threads) {
  const int tasks = rowTasks(N);
  // NOTE: the forward's threshold (N · D · 8): at 2,048 × 64 a second thread gained nothing here
  // (132–207 µs on two against 138–146 on one, idle)
  const int nt = rowThreads(static_cast<double>(N) * D * 8, threads, tasks);
  ThreadSums sums(nt, {dGain}, {D});
  parallelForStatic(nt, tasks, [&](int task, int tid) {
    const long r0 = static_cast<long>(task) * FFN_CHUNK, r1 = std::min<long>(N, r0 + FFN_CHUNK);
    Buf h(D), n(D), zero(D);
    std::memset(zero.p, 0, sizeof(float) * D);
    for (long r = r0; r < r1; r++) {
      const float inv = normRow(x + r * D, gain, D, kind, eps, h.p, n.p);
      normRowBackward(dy + r * D, n.p, inv, gain, D, kind, zero.p, dx + r * D, sums.at(tid, 0));
    }
  });
  sums.reduce();
}

// ---------------------------------------------------------------------------------------------
// The LM head and the token cross-entropy, fused with their gradient (issue 14): per chunk of
// rows, logits = x · w, each row's log-sum-exp and Σ weight · (lse − logit[target]); with grads,
// P = weight · (softmax − onehot(target)) overwrites the logits and dx = P · wᵀ, dW += xᵀ · P.
// The loss is the graph's end, so its gradient is known up to the upstream scalar when the
// forward runs: computing it there saves the backward's recomputation of the (rows, V) logits
// (a third of the head's FLOPs) and the (N, V) logits are never held, only one chunk per thread.

struct HeadLoss {
  int N, Dm, V;
  const float *x, *w;     // x (N, Dm), w (Dm, V), or (V, Dm) when transposed (a tied embedding)
  bool transposed;
  const int32_t* target;  // (N), in [0, V)
  const float* weight;    // (N): each row's factor, the normalisation included (0: not counted)
  int chunkRows;          // rows per task: its logits, chunkRows · V floats, are the op's working set
  int threads;
};

// row[c] = exp(row[c] − sub) for c < n; returns their sum (any n).
static inline float expRowAny(float* row, int n, float sub) {
  const int n16 = n & ~15;
  float s = expRow(row, n16, 1.0f, sub);
  for (int c = n16; c < n; c++) {
    const float e = row[c] - sub;
    row[c] = e < -87.f ? 0.f : std::exp(e);
    s += row[c];
  }
  return s;
}

static inline float rowMaxAny(const float* row, int n) {
  const int n16 = n & ~15;
  float m = n16 > 0 ? rowMax(row, n16) : NEG_INF;
  for (int c = n16; c < n; c++) m = std::max(m, row[c]);
  return m;
}

// Returns Σ weight · (lse − logit[target]) and writes lse (N); with dx (N, Dm) and dW (Dm, V)
// (written, not added) the sum's gradients too. Deterministic for a given thread count.
static double headLoss(const HeadLoss& h, float* lse, float* dx, float* dW) {
  const int C = h.chunkRows, tasks = (h.N + C - 1) / C, V = h.V, Dm = h.Dm;
  const int threads = rowThreads(static_cast<double>(h.N) * Dm * V, h.threads, tasks);
  const bool grads = dx && dW;
  ThreadSums sums(threads, {grads ? dW : nullptr}, {static_cast<long>(Dm) * V});
  std::vector<double> partial(std::max(1, tasks), 0.0);
  parallelForStatic(threads, tasks, [&](int task, int tid) {
    const long r0 = static_cast<long>(task) * C;
    const int rows = static_cast<int>(std::min<long>(C, h.N - r0));
    Buf logits(static_cast<size_t>(rows) * V);
    const float* xr = h.x + r0 * Dm;
    const long ldw = h.transposed ? Dm : V;
    gemmOne(xr, Dm, false, h.w, ldw, h.transposed, logits.p, V, rows, V, Dm, false);  // x · w
    double total = 0;
    for (int i = 0; i < rows; i++) {
      float* row = logits.p + static_cast<long>(i) * V;
      const int t = h.target[r0 + i];
      const float wi = h.weight[r0 + i], picked = row[t], m = rowMaxAny(row, V);
      const float sum = expRowAny(row, V, m);
      const float l = m + std::log(sum);
      lse[r0 + i] = l;
      total += static_cast<double>(wi) * (static_cast<double>(l) - picked);
      if (!grads) continue;
      if (wi == 0.f) {
        std::memset(row, 0, sizeof(float) * V);
        continue;
      }
      const float scale = wi / sum;
      for (int c = 0; c < V; c++) row[c] *= scale;
      row[t] -= wi;
    }
    partial[task] = total;
    if (!grads) return;
    gemmOne(logits.p, V, false, h.w, ldw, !h.transposed, dx + r0 * Dm, Dm, rows, Dm, V, false);  // dx = P · wᵀ
    if (h.transposed)
      gemmOne(logits.p, V, true, xr, Dm, false, sums.at(tid, 0), Dm, V, Dm, rows, true);  // dW += Pᵀ · x
    else
      gemmOne(xr, Dm, true, logits.p, V, false, sums.at(tid, 0), V, Dm, V, rows, true);  // dW += xᵀ · P
  });
  if (grads) sums.reduce();
  double loss = 0;
  for (int t = 0; t < tasks; t++) loss += partial[t];
  return loss;
}

// ---------------------------------------------------------------------------------------------
// The RL policies' action head and loss, fused with their gradient (issue 14): per chunk of rows,
// h = norm(x) ∘ gain, p = tanh(h · w + b) and Σ weight · Σ_a (p − target)²; with grads,
// g = 2 · weight · (p − target) · (1 − p²), dW += hᵀ · g, db += Σ g, dh = g · wᵀ and dx through the
// norm. In tfjs this was ≈ 30 small kernels a step (the head's three products, the norm, tanh,
// the loss and their gradients: ≈ 1 ms of an ant-medium step of 17) for ≈ 4M multiply-adds.
// As with headLoss, the loss ends the graph, so the gradients come from the same pass.

struct ActionLoss {
  int N, Dm, A, kind;
  float eps;
  const float *x, *gain, *w, *b;  // x (N, Dm), gain (Dm), w (Dm, A), b (A)
  const float* target;            // (N, A)
  const float* weight;            // (N): each row's factor, the normalisation included (0: not counted)
  int threads;
};

// Returns the weighted sum of squared errors; with dx (N, Dm), dGain (Dm), dW (Dm, A) and db (A)
// (written, not added) its gradients. Rows of weight 0 add nothing, not even a NaN of their own
// (padding). Deterministic for a given thread count.
static double actionLoss(const ActionLoss& h, float* dx, float* dGain, float* dW, float* db) {
  const int tasks = rowTasks(h.N), Dm = h.Dm, A = h.A;
  // NOTE: one thread up to 2^19 values of x: at ant-medium's 2,048 × 64 (A = 8) a call took 0.32 ms
  // on one thread and 0.40–0.42 on two (2-core AMD EPYC, idle): the helper's wake cost more than
  // half the work saved
  const int threads = static_cast<long>(h.N) * Dm < (1L << 19) ? 1 : std::min(h.threads, std::max(1, tasks));
  const bool grads = dx != nullptr;
  ThreadSums sums(threads, {dGain, dW, db}, {Dm, static_cast<long>(Dm) * A, A});
  const Transposed wT(h.w, Dm, A);  // (A, Dm): dh = g · wᵀ reads it in place
  std::vector<double> partial(std::max(1, tasks), 0.0);
  parallelForStatic(threads, tasks, [&](int task, int tid) {
    const long r0 = static_cast<long>(task) * FFN_CHUNK;
    const int rows = static_cast<int>(std::min<long>(FFN_CHUNK, h.N - r0));
    Buf hn(static_cast<size_t>(rows) * Dm), n(static_cast<size_t>(rows) * Dm), p(static_cast<size_t>(rows) * A);
    Buf r(rows), zero(Dm);
    for (int i = 0; i < rows; i++)
      r.p[i] = normRow(h.x + (r0 + i) * Dm, h.gain, Dm, h.kind, h.eps, hn.p + static_cast<long>(i) * Dm,
                       n.p + static_cast<long>(i) * Dm);
    gemmOne(hn.p, Dm, false, h.w, A, false, p.p, A, rows, A, Dm, false);  // h · w
    for (int i = 0; i < rows; i++)
      for (int a = 0; a < A; a++) p.p[static_cast<long>(i) * A + a] += h.b[a];
    tanhSpan(p.p, p.p, 0, static_cast<long>(rows) * A);
    double total = 0;
    for (int i = 0; i < rows; i++) {
      float* pi = p.p + static_cast<long>(i) * A;  // p, then g in place
      const float* ti = h.target + (r0 + i) * A;
      const float wi = h.weight[r0 + i];
      if (wi == 0.f) {  // g = 0, and h = 0 so that a NaN of the row's own stays out of dW
        std::memset(pi, 0, sizeof(float) * A);
        std::memset(hn.p + static_cast<long>(i) * Dm, 0, sizeof(float) * Dm);
        continue;
      }
      double se = 0;
      for (int a = 0; a < A; a++) {
        const float d = pi[a] - ti[a];
        se += static_cast<double>(d) * d;
        pi[a] = 2.0f * wi * d * (1.0f - pi[a] * pi[a]);
      }
      total += static_cast<double>(wi) * se;
    }
    partial[task] = total;
    if (!grads) return;
    gemmOne(hn.p, Dm, true, p.p, A, false, sums.at(tid, 1), A, Dm, A, rows, true);  // dW += hᵀ · g
    float* dbSum = sums.at(tid, 2);
    for (int i = 0; i < rows; i++)
      for (int a = 0; a < A; a++) dbSum[a] += p.p[static_cast<long>(i) * A + a];
    gemmOne(p.p, A, false, wT.buf.p, Dm, false, hn.p, Dm, rows, Dm, A, false);  // dh = g · wᵀ, over h
    std::memset(zero.p, 0, sizeof(float) * Dm);
    for (int i = 0; i < rows; i++) {
      float* dxi = dx + (r0 + i) * Dm;
      if (h.weight[r0 + i] == 0.f)
        std::memset(dxi, 0, sizeof(float) * Dm);
      else
        normRowBackward(hn.p + static_cast<long>(i) * Dm, n.p + static_cast<long>(i) * Dm, r.p[i], h.gain, Dm,
                        h.kind, zero.p, dxi, sums.at(tid, 0));
    }
  });
  if (grads) sums.reduce();
  double loss = 0;
  for (int t = 0; t < tasks; t++) loss += partial[t];
  return loss;
}

// ---------------------------------------------------------------------------------------------
// Node-API glue: argument checks at the boundary (errors name the function and the argument).

struct ArgError {
  std::string msg;
};

class Args {
 public:
  Args(napi_env env, napi_callback_info info, const char* fn) : env_(env), fn_(fn) {
    size_t argc = 32;
    napi_get_cb_info(env, info, &argc, argv_, nullptr, nullptr);
    argc_ = argc;
  }
  size_t argc() const { return argc_; }
  napi_value raw(size_t i) {
    if (i >= argc_) throw ArgError{std::string(fn_) + ": missing argument " + std::to_string(i)};
    return argv_[i];
  }
  template <class T>
  T* array(size_t i, const char* name, napi_typedarray_type want, size_t minLen, bool optional = false) {
    if (optional && i >= argc_) return nullptr;  // an optional trailing argument left out
    napi_value v = raw(i);
    napi_valuetype t;
    napi_typeof(env_, v, &t);
    if (optional && (t == napi_null || t == napi_undefined)) return nullptr;
    bool is = false;
    napi_is_typedarray(env_, v, &is);
    const char* wantName = want == napi_float32_array ? "Float32Array" : "Int32Array";
    if (!is) throw ArgError{std::string(fn_) + ": " + name + " must be a " + wantName};
    napi_typedarray_type type;
    size_t len;
    void* data;
    napi_get_typedarray_info(env_, v, &type, &len, &data, nullptr, nullptr);
    if (type != want) throw ArgError{std::string(fn_) + ": " + name + " must be a " + wantName};
    if (len < minLen)
      throw ArgError{std::string(fn_) + ": " + name + " has " + std::to_string(len) + " elements; expected " +
                     std::to_string(minLen)};
    return static_cast<T*>(data);
  }
  // An array of Float32Arrays: (data, length) of each.
  std::vector<std::pair<float*, size_t>> floatArrays(size_t i, const char* name) {
    napi_value list = raw(i);
    bool isArray = false;
    napi_is_array(env_, list, &isArray);
    if (!isArray) throw ArgError{std::string(fn_) + ": " + name + " must be an array of Float32Array"};
    uint32_t n = 0;
    napi_get_array_length(env_, list, &n);
    std::vector<std::pair<float*, size_t>> out;
    for (uint32_t k = 0; k < n; k++) {
      napi_value e;
      napi_get_element(env_, list, k, &e);
      bool is = false;
      napi_is_typedarray(env_, e, &is);
      napi_typedarray_type type = napi_int8_array;
      size_t len = 0;
      void* data = nullptr;
      if (is) napi_get_typedarray_info(env_, e, &type, &len, &data, nullptr, nullptr);
      if (!is || type != napi_float32_array)
        throw ArgError{std::string(fn_) + ": " + name + "[" + std::to_string(k) + "] must be a Float32Array"};
      out.emplace_back(static_cast<float*>(data), len);
    }
    return out;
  }
  int integer(size_t i, const char* name, int lo) {
    int32_t x;
    if (napi_get_value_int32(env_, raw(i), &x) != napi_ok || x < lo)
      throw ArgError{std::string(fn_) + ": " + name + " must be an integer ≥ " + std::to_string(lo)};
    return x;
  }
  double number(size_t i, const char* name) {
    double x;
    if (napi_get_value_double(env_, raw(i), &x) != napi_ok)
      throw ArgError{std::string(fn_) + ": " + name + " must be a number"};
    return x;
  }
  bool boolean(size_t i, const char* name) {
    bool x;
    if (napi_get_value_bool(env_, raw(i), &x) != napi_ok)
      throw ArgError{std::string(fn_) + ": " + name + " must be a boolean"};
    return x;
  }

 private:
  napi_env env_;
  const char* fn_;
  napi_value argv_[32];
  size_t argc_ = 0;
};

template <class F>
napi_value guarded(napi_env env, F&& f) {
  try {
    f();
  } catch (const ArgError& e) {
    napi_throw_type_error(env, nullptr, e.msg.c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
  }
  return nullptr;
}

// Common attention arguments from index `i`: B, H, Hk, Tq, Tk, D, scale, causal, qPos, kPos,
// qSeg, kSeg, threads.
static Attn attnArgs(Args& x, size_t i, const char* fn) {
  Attn a{};
  a.B = x.integer(i, "B", 1);
  a.H = x.integer(i + 1, "H", 1);
  a.Hk = x.integer(i + 2, "Hk", 1);
  a.Tq = x.integer(i + 3, "Tq", 1);
  a.Tk = x.integer(i + 4, "Tk", 1);
  a.D = x.integer(i + 5, "D", 1);
  a.scale = static_cast<float>(x.number(i + 6, "scale"));
  a.causal = x.boolean(i + 7, "causal");
  a.qPos = x.array<int32_t>(i + 8, "qPos", napi_int32_array, a.Tq);
  a.kPos = x.array<int32_t>(i + 9, "kPos", napi_int32_array, a.Tk);
  a.qSeg = x.array<int32_t>(i + 10, "qSeg", napi_int32_array, static_cast<size_t>(a.B) * a.Tq, true);
  a.kSeg = x.array<int32_t>(i + 11, "kSeg", napi_int32_array, static_cast<size_t>(a.B) * a.Tk, true);
  a.threads = x.integer(i + 12, "threads", 1);
  if (a.H % a.Hk != 0)
    throw ArgError{std::string(fn) + ": H (" + std::to_string(a.H) + ") must be a multiple of Hk (" +
                   std::to_string(a.Hk) + ")"};
  if (!a.qSeg != !a.kSeg) throw ArgError{std::string(fn) + ": qSeg and kSeg must both be given or both null"};
  if (a.D > 1024) throw ArgError{std::string(fn) + ": D must be ≤ 1024; got " + std::to_string(a.D)};
  return a;
}

// attnForward(q, k, v, o, m, l, B, H, Hk, Tq, Tk, D, scale, causal, qPos, kPos, qSeg, kSeg, threads
// [, lse]): with lse (B·H·Tq, not null) the chunk is the last and o ends normalised, as after
// attnFinalize.
napi_value AttnForward(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args x(env, info, "attnForward");
    const Attn a = attnArgs(x, 6, "attnForward");
    const size_t nq = static_cast<size_t>(a.B) * a.H * a.Tq, nk = static_cast<size_t>(a.B) * a.Hk * a.Tk;
    const float* q = x.array<float>(0, "q", napi_float32_array, nq * a.D);
    const float* k = x.array<float>(1, "k", napi_float32_array, nk * a.D);
    const float* v = x.array<float>(2, "v", napi_float32_array, nk * a.D);
    float* o = x.array<float>(3, "o", napi_float32_array, nq * a.D);
    float* m = x.array<float>(4, "m", napi_float32_array, nq);
    float* l = x.array<float>(5, "l", napi_float32_array, nq);
    float* lse = x.array<float>(19, "lse", napi_float32_array, nq, true);
    attnForward(a, q, k, v, o, m, l, lse);
  });
}

// attnBackward(q, k, v, dOut, lse, delta, dq, dk, dv, B, H, Hk, Tq, Tk, D, scale, causal, qPos,
// kPos, qSeg, kSeg, threads): adds into dq, dk, dv.
napi_value AttnBackward(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args x(env, info, "attnBackward");
    const Attn a = attnArgs(x, 9, "attnBackward");
    const size_t nq = static_cast<size_t>(a.B) * a.H * a.Tq, nk = static_cast<size_t>(a.B) * a.Hk * a.Tk;
    const float* q = x.array<float>(0, "q", napi_float32_array, nq * a.D);
    const float* k = x.array<float>(1, "k", napi_float32_array, nk * a.D);
    const float* v = x.array<float>(2, "v", napi_float32_array, nk * a.D);
    const float* dO = x.array<float>(3, "dOut", napi_float32_array, nq * a.D);
    const float* lse = x.array<float>(4, "lse", napi_float32_array, nq);
    const float* delta = x.array<float>(5, "delta", napi_float32_array, nq);
    float* dq = x.array<float>(6, "dq", napi_float32_array, nq * a.D);
    float* dk = x.array<float>(7, "dk", napi_float32_array, nk * a.D);
    float* dv = x.array<float>(8, "dv", napi_float32_array, nk * a.D);
    attnBackward(a, q, k, v, dO, lse, delta, dq, dk, dv);
  });
}

// attnFinalize(o, m, l, lse, rows, D): o /= l in place, lse = m + log l (+inf where a row saw no
// key, so that the backward's exp(S·scale − lse) is 0 there).
napi_value AttnFinalize(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args x(env, info, "attnFinalize");
    const int rows = x.integer(4, "rows", 0), D = x.integer(5, "D", 1);
    float* o = x.array<float>(0, "o", napi_float32_array, static_cast<size_t>(rows) * D);
    const float* m = x.array<float>(1, "m", napi_float32_array, rows);
    const float* l = x.array<float>(2, "l", napi_float32_array, rows);
    float* lse = x.array<float>(3, "lse", napi_float32_array, rows);
    finalizeRows(o, m, l, lse, rows, D);
  });
}

// Σ x[d] · y[d] in 8 (16) lanes: a float sum is not reassociated by the compiler, so a plain loop
// would be one serial chain of adds.
static inline float dot(const float* x, const float* y, int D) {
  int d = 0;
  float s = 0.f;
#if RING_SIMD && defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  for (; d + 16 <= D; d += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(x + d), _mm512_loadu_ps(y + d), acc);
  s = _mm512_reduce_add_ps(acc);
#elif RING_SIMD
  __m256 acc = _mm256_setzero_ps();
  for (; d + 8 <= D; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + d), _mm256_loadu_ps(y + d), acc);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  for (float v : lanes) s += v;
#endif
  for (; d < D; d++) s += x[d] * y[d];
  return s;
}

// rowDot(a, b, out, rows, D[, threads]): out[r] = Σ_d a[r, d] · b[r, d] (the backward's Δ = rowsum(dO ∘ O)).
napi_value RowDot(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args x(env, info, "rowDot");
    const int rows = x.integer(3, "rows", 0), D = x.integer(4, "D", 1);
    const float* a = x.array<float>(0, "a", napi_float32_array, static_cast<size_t>(rows) * D);
    const float* b = x.array<float>(1, "b", napi_float32_array, static_cast<size_t>(rows) * D);
    float* out = x.array<float>(2, "out", napi_float32_array, rows);
    const int threads = x.argc() > 5 ? x.integer(5, "threads", 1) : 1;
    // NOTE: rows in tasks of 1,024; helpers only from 2M elements (rowThreads' bar): an ant-medium
    // layer's Δ (4,096 rows of 32) is ≈ 10 µs of work, less than waking a parked helper, and took
    // 0.1 ms a step on one thread against 0.3–1.4 on two beside a busy process (rl-train --profile)
    constexpr long CHUNK = 1024;
    const int tasks = static_cast<int>((rows + CHUNK - 1) / CHUNK);
    parallelFor(rowThreads(static_cast<double>(rows) * D, threads, tasks), tasks, [&](int task, int) {
      const long r1 = std::min<long>(rows, (task + 1) * CHUNK);
      for (long r = task * CHUNK; r < r1; r++) out[r] = dot(a + r * D, b + r * D, D);
    });
  });
}

// sgemm(a, b, c, M, N, K, transA, transB, threads): c (M, N) = op(a) · op(b); a is (M, K), or
// (K, M) when transA; b is (K, N), or (N, K) when transB.
napi_value Sgemm(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args x(env, info, "sgemm");
    Gemm g{};
    g.M = x.integer(3, "M", 0);
    g.N = x.integer(4, "N", 0);
    g.K = x.integer(5, "K", 0);
    g.ta = x.boolean(6, "transA");
    g.tb = x.boolean(7, "transB");
    const int threads = x.integer(8, "threads", 1);
    g.A = x.array<float>(0, "a", napi_float32_array, static_cast<size_t>(g.M) * g.K);
    g.B = x.array<float>(1, "b", napi_float32_array, static_cast<size_t>(g.K) * g.N);
    g.C = x.array<float>(2, "c", napi_float32_array, static_cast<size_t>(g.M) * g.N);
    g.lda = g.ta ? g.M : g.K;
    g.ldb = g.tb ? g.K : g.N;
    g.ldc = g.N;
    if (g.M > 0 && g.N > 0) sgemm(g, threads);
  });
}

// An elementwise call (x, y, n, threads): y[i] = f(x[i]) for i < n, f one of the *Array kernels.
napi_value unaryCall(napi_env env, napi_callback_info info, const char* name,
                     void (*f)(const float*, float*, long, int)) {
  return guarded(env, [&] {
    Args a(env, info, name);
    const int n = a.integer(2, "n", 0), threads = a.integer(3, "threads", 1);
    const float* x = a.array<float>(0, "x", napi_float32_array, n);
    float* y = a.array<float>(1, "y", napi_float32_array, n);
    f(x, y, n, threads);
  });
}

// exp(x, y, n, threads): y[i] = exp(x[i]) for i < n.
napi_value Exp(napi_env env, napi_callback_info info) { return unaryCall(env, info, "exp", expArray); }

// tanh(x, y, n, threads): y[i] = tanh(x[i]) for i < n.
napi_value Tanh(napi_env env, napi_callback_info info) { return unaryCall(env, info, "tanh", tanhArray); }

// scatterAddRows(ids, src, dst, n, width, rows): dst (rows, width) = Σ_k [ids[k] = r] src[k, :];
// dst is overwritten; an id outside 0 … rows − 1 throws.
napi_value ScatterAddRows(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "scatterAddRows");
    const int n = a.integer(3, "n", 0), width = a.integer(4, "width", 0), rows = a.integer(5, "rows", 0);
    const int32_t* ids = a.array<int32_t>(0, "ids", napi_int32_array, n);
    const float* src = a.array<float>(1, "src", napi_float32_array, static_cast<size_t>(n) * width);
    float* dst = a.array<float>(2, "dst", napi_float32_array, static_cast<size_t>(rows) * width);
    const long bad = scatterAddRows(ids, src, dst, n, width, rows);
    if (bad >= 0)
      throw ArgError{"scatterAddRows: ids[" + std::to_string(bad) + "] = " + std::to_string(ids[bad]) +
                     " is outside the table's " + std::to_string(rows) + " rows"};
  });
}

// The per-modality tables of a modalityEmbed call: lists at argument i (weights) and i + 1 (biases),
// one entry per modality, each weight (w_m, D) with w_m ≤ F, each bias (D).
static ModalityTable modalityTable(Args& a, size_t i, long D, long F, const char* fn) {
  ModalityTable t{a.floatArrays(i, "weights"), a.floatArrays(i + 1, "biases"), D};
  if (t.w.size() != t.b.size())
    throw ArgError{std::string(fn) + ": " + std::to_string(t.w.size()) + " weights but " +
                   std::to_string(t.b.size()) + " biases (one of each per modality)"};
  for (size_t m = 0; m < t.w.size(); m++) {
    if (D <= 0 || t.w[m].second % D != 0 || t.width(static_cast<int>(m)) > F || t.b[m].second != static_cast<size_t>(D))
      throw ArgError{std::string(fn) + ": modality " + std::to_string(m) + " has " + std::to_string(t.w[m].second) +
                     " weights and " + std::to_string(t.b[m].second) + " biases; expected (w ≤ " + std::to_string(F) +
                     ") × " + std::to_string(D) + " and " + std::to_string(D)};
  }
  return t;
}

// What both modality calls take at the same places: feats (N, F) and types (N) first, N, F, D and
// threads last (arguments 5–8).
struct ModalityCall {
  int N, F, D, threads;
  const float* feats;
  const int32_t* types;
};
static ModalityCall modalityCall(Args& a) {
  ModalityCall c{a.integer(5, "N", 0), a.integer(6, "F", 0), a.integer(7, "D", 1), a.integer(8, "threads", 1),
                 nullptr, nullptr};
  c.feats = a.array<float>(0, "feats", napi_float32_array, static_cast<size_t>(c.N) * c.F);
  c.types = a.array<int32_t>(1, "types", napi_int32_array, c.N);
  return c;
}

// modalityEmbed(feats, types, weights, biases, out, N, F, D, threads): out (N, D); feats (N, F);
// types (N).
napi_value ModalityEmbed(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "modalityEmbed");
    const ModalityCall c = modalityCall(a);
    const ModalityTable t = modalityTable(a, 2, c.D, c.F, "modalityEmbed");
    float* out = a.array<float>(4, "out", napi_float32_array, static_cast<size_t>(c.N) * c.D);
    modalityEmbed(c.feats, c.types, t, out, c.N, c.F, c.threads);
  });
}

// modalityEmbedBackward(feats, types, dy, dWeights, dBiases, N, F, D, threads): the gradients
// (overwritten).
napi_value ModalityEmbedBackward(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "modalityEmbedBackward");
    const ModalityCall c = modalityCall(a);
    const float* dy = a.array<float>(2, "dy", napi_float32_array, static_cast<size_t>(c.N) * c.D);
    const ModalityTable t = modalityTable(a, 3, c.D, c.F, "modalityEmbedBackward");
    modalityEmbedBackward(c.feats, c.types, dy, t, c.N, c.F, c.threads);
  });
}

// adamw(params, out, grads, m, v, decay, lr, beta1, beta2, eps, weightDecay, step, maxNorm,
// threads): one AdamW step over every tensor (params, out, grads, m, v: lists of Float32Array,
// one per tensor; decay: Int32Array, 1 where the tensor decays). The new weights go to out
// (may be params itself); m and v are updated in place; params and grads are read only.
// Gradients are first scaled to global norm ≤ maxNorm (0: no clip). Returns the global norm
// before clipping.
napi_value AdamW(napi_env env, napi_callback_info info) {
  double norm = 0;
  guarded(env, [&] {
    Args a(env, info, "adamw");
    const auto xs = a.floatArrays(0, "params");
    const auto os = a.floatArrays(1, "out");
    const auto gs = a.floatArrays(2, "grads");
    const auto ms = a.floatArrays(3, "m");
    const auto vs = a.floatArrays(4, "v");
    const size_t n = xs.size();
    if (os.size() != n || gs.size() != n || ms.size() != n || vs.size() != n)
      throw ArgError{"adamw: params, out, grads, m and v must have one entry per tensor; got " + std::to_string(n) +
                     ", " + std::to_string(os.size()) + ", " + std::to_string(gs.size()) + ", " +
                     std::to_string(ms.size()) + ", " + std::to_string(vs.size())};
    const int32_t* decay = a.array<int32_t>(5, "decay", napi_int32_array, n);
    const double lr = a.number(6, "lr"), b1 = a.number(7, "beta1"), b2 = a.number(8, "beta2");
    const double eps = a.number(9, "eps"), wd = a.number(10, "weightDecay");
    const int step = a.integer(11, "step", 1);
    const double maxNorm = a.number(12, "maxNorm");
    const int threads = a.integer(13, "threads", 1);
    std::vector<AdamTensor> ts;
    for (size_t t = 0; t < n; t++) {
      const size_t len = xs[t].second;
      if (os[t].second != len || gs[t].second != len || ms[t].second != len || vs[t].second != len)
        throw ArgError{"adamw: tensor " + std::to_string(t) + " has " + std::to_string(len) +
                       " parameters; its out, grad, m and v must have as many (got " + std::to_string(os[t].second) +
                       ", " + std::to_string(gs[t].second) + ", " + std::to_string(ms[t].second) + ", " +
                       std::to_string(vs[t].second) + ")"};
      ts.push_back({xs[t].first, os[t].first, gs[t].first, ms[t].first, vs[t].first, static_cast<long>(len),
                    decay[t] != 0});
    }
    // the caller's constants as train/optim.ts computes them (double), each cast once to float32
    const AdamHyper h{static_cast<float>(lr),
                      static_cast<float>(b1),
                      static_cast<float>(1 - b1),
                      static_cast<float>(b2),
                      static_cast<float>(1 - b2),
                      static_cast<float>(eps),
                      static_cast<float>(1 - std::pow(b1, step)),
                      static_cast<float>(1 - std::pow(b2, step)),
                      static_cast<float>(1 - lr * wd),
                      maxNorm};
    norm = adamwStep(ts, h, threads);
  });
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return nullptr;
  napi_value out;
  napi_create_double(env, norm, &out);
  return out;
}

// An FFN sublayer's norm, act, eps, threads from index `i` (N, Dm, F set before).
static void ffnSettings(Args& a, size_t i, const char* fn, Ffn& f) {
  f.norm = a.integer(i, "norm", 0);
  f.act = a.integer(i + 1, "act", 0);
  f.eps = static_cast<float>(a.number(i + 2, "eps"));
  f.threads = a.integer(i + 3, "threads", 1);
  if (f.norm > NORM_LAYER) throw ArgError{std::string(fn) + ": norm must be 0 (rms) or 1 (layer)"};
  if (f.act > ACT_SWIGLU) throw ArgError{std::string(fn) + ": act must be 0 (gelu), 1 (relu) or 2 (swiglu)"};
}

// An FFN sublayer's gain, up, down, gate | null at `at`…`at` + 3.
static void ffnWeights(Args& a, size_t at, Ffn& f) {
  const size_t w = static_cast<size_t>(f.Dm) * f.F;
  f.gain = a.array<float>(at, "gain", napi_float32_array, f.Dm);
  f.up = a.array<float>(at + 1, "up", napi_float32_array, w);
  f.down = a.array<float>(at + 2, "down", napi_float32_array, w);
  f.gate = a.array<float>(at + 3, "gate", napi_float32_array, w, f.act != ACT_SWIGLU);
}

// The FFN sublayer's arguments: x, gain, up, down, gate at 0–4, then N, Dm, F, norm, act, eps,
// threads from index `i`.
static Ffn ffnArgs(Args& a, size_t i, const char* fn) {
  Ffn f{};
  f.N = a.integer(i, "N", 0);
  f.Dm = a.integer(i + 1, "Dm", 1);
  f.F = a.integer(i + 2, "F", 1);
  ffnSettings(a, i + 3, fn, f);
  f.x = a.array<float>(0, "x", napi_float32_array, static_cast<size_t>(f.N) * f.Dm);
  ffnWeights(a, 1, f);
  return f;
}

// ffnForward(x, gain, up, down, gate | null, y, N, Dm, F, norm, act, eps, threads):
// y (N, Dm) = x + FFN(norm(x) ∘ gain).
napi_value FfnForward(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "ffnForward");
    const Ffn f = ffnArgs(a, 6, "ffnForward");
    float* y = a.array<float>(5, "y", napi_float32_array, static_cast<size_t>(f.N) * f.Dm);
    ffnForward(f, y);
  });
}

// ffnBackward(x, gain, up, down, gate | null, dy, dx, dGain, dUp, dDown, dGate | null, N, Dm, F,
// norm, act, eps, threads): the gradients of the sublayer for dy (N, Dm), written (not added).
napi_value FfnBackward(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "ffnBackward");
    const Ffn f = ffnArgs(a, 11, "ffnBackward");
    const size_t nd = static_cast<size_t>(f.N) * f.Dm, w = static_cast<size_t>(f.Dm) * f.F;
    const float* dy = a.array<float>(5, "dy", napi_float32_array, nd);
    float* dx = a.array<float>(6, "dx", napi_float32_array, nd);
    float* dGain = a.array<float>(7, "dGain", napi_float32_array, f.Dm);
    float* dUp = a.array<float>(8, "dUp", napi_float32_array, w);
    float* dDown = a.array<float>(9, "dDown", napi_float32_array, w);
    float* dGate = a.array<float>(10, "dGate", napi_float32_array, w, f.act != ACT_SWIGLU);
    if (f.act == ACT_SWIGLU && !dGate) throw ArgError{"ffnBackward: swiglu needs dGate"};
    ffnBackward(f, dy, dx, dGain, dUp, dDown, dGate);
  });
}

// normForward(x, gain, y, N, D, kind, eps, threads): y (N, D) = norm(x) ∘ gain; kind 0 RMSNorm,
// 1 LayerNorm without bias.
napi_value NormForward(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "normForward");
    const int N = a.integer(3, "N", 0), D = a.integer(4, "D", 1), kind = a.integer(5, "kind", 0);
    if (kind > NORM_LAYER) throw ArgError{"normForward: kind must be 0 (rms) or 1 (layer)"};
    const size_t nd = static_cast<size_t>(N) * D;
    normForward(a.array<float>(0, "x", napi_float32_array, nd), a.array<float>(1, "gain", napi_float32_array, D),
                a.array<float>(2, "y", napi_float32_array, nd), N, D, kind, static_cast<float>(a.number(6, "eps")),
                a.integer(7, "threads", 1));
  });
}

// normBackward(x, gain, dy, dx, dGain, N, D, kind, eps, threads): the norm's gradients for dy,
// written (not added).
napi_value NormBackward(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "normBackward");
    const int N = a.integer(5, "N", 0), D = a.integer(6, "D", 1), kind = a.integer(7, "kind", 0);
    if (kind > NORM_LAYER) throw ArgError{"normBackward: kind must be 0 (rms) or 1 (layer)"};
    const size_t nd = static_cast<size_t>(N) * D;
    normBackward(a.array<float>(0, "x", napi_float32_array, nd), a.array<float>(1, "gain", napi_float32_array, D),
                 a.array<float>(2, "dy", napi_float32_array, nd), a.array<float>(3, "dx", napi_float32_array, nd),
                 a.array<float>(4, "dGain", napi_float32_array, D), N, D, kind,
                 static_cast<float>(a.number(8, "eps")), a.integer(9, "threads", 1));
  });
}

// headLoss(x, w, target, weight, out, dx | null, dW | null, N, Dm, V, transposed, chunkRows,
// threads):
// out[0] = Σ over rows of weight · (log Σ exp(logits) − logits[target]), logits = x · w (w (Dm, V))
// or x · wᵀ (transposed: w (V, Dm)), and out[1..N] each row's log-sum-exp; with dx (N, Dm) and dW
// (w's layout) the sum's gradients (written, not added).
napi_value HeadLossFn(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "headLoss");
    HeadLoss h{};
    h.N = a.integer(7, "N", 0);
    h.Dm = a.integer(8, "Dm", 1);
    h.V = a.integer(9, "V", 1);
    h.transposed = a.boolean(10, "transposed");
    h.chunkRows = a.integer(11, "chunkRows", 1);
    h.threads = a.integer(12, "threads", 1);
    h.x = a.array<float>(0, "x", napi_float32_array, static_cast<size_t>(h.N) * h.Dm);
    h.w = a.array<float>(1, "w", napi_float32_array, static_cast<size_t>(h.Dm) * h.V);
    h.target = a.array<int32_t>(2, "target", napi_int32_array, h.N);
    h.weight = a.array<float>(3, "weight", napi_float32_array, h.N);
    float* out = a.array<float>(4, "out", napi_float32_array, static_cast<size_t>(h.N) + 1);
    float* dx = a.array<float>(5, "dx", napi_float32_array, static_cast<size_t>(h.N) * h.Dm, true);
    float* dW = a.array<float>(6, "dW", napi_float32_array, static_cast<size_t>(h.Dm) * h.V, true);
    if (!dx != !dW) throw ArgError{"headLoss: dx and dW must both be given or both be null"};
    for (int i = 0; i < h.N; i++)
      if (h.target[i] < 0 || h.target[i] >= h.V)
        throw ArgError{"headLoss: target " + std::to_string(h.target[i]) + " at " + std::to_string(i) +
                       " is outside [0, " + std::to_string(h.V) + ")"};
    out[0] = static_cast<float>(headLoss(h, out + 1, dx, dW));
  });
}

// actionLoss(x, gain, w, b, target, weight, out, dx | null, dGain | null, dW | null, db | null, N, Dm, A,
// kind, eps, threads): out[0] = Σ over rows of weight · Σ_a (tanh(norm(x) ∘ gain · w + b) − target)²,
// w (Dm, A); with dx (N, Dm), dGain (Dm), dW (Dm, A) and db (A) its gradients (written, not added).
napi_value ActionLossFn(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "actionLoss");
    ActionLoss h{};
    h.N = a.integer(11, "N", 0);
    h.Dm = a.integer(12, "Dm", 1);
    h.A = a.integer(13, "A", 1);
    h.kind = a.integer(14, "kind", 0);
    if (h.kind > NORM_LAYER) throw ArgError{"actionLoss: kind must be 0 (rms) or 1 (layer)"};
    h.eps = static_cast<float>(a.number(15, "eps"));
    h.threads = a.integer(16, "threads", 1);
    const size_t nd = static_cast<size_t>(h.N) * h.Dm, na = static_cast<size_t>(h.N) * h.A;
    const size_t da = static_cast<size_t>(h.Dm) * h.A;
    h.x = a.array<float>(0, "x", napi_float32_array, nd);
    h.gain = a.array<float>(1, "gain", napi_float32_array, h.Dm);
    h.w = a.array<float>(2, "w", napi_float32_array, da);
    h.b = a.array<float>(3, "b", napi_float32_array, h.A);
    h.target = a.array<float>(4, "target", napi_float32_array, na);
    h.weight = a.array<float>(5, "weight", napi_float32_array, h.N);
    float* out = a.array<float>(6, "out", napi_float32_array, 1);
    float* dx = a.array<float>(7, "dx", napi_float32_array, nd, true);
    float* dGain = a.array<float>(8, "dGain", napi_float32_array, h.Dm, true);
    float* dW = a.array<float>(9, "dW", napi_float32_array, da, true);
    float* db = a.array<float>(10, "db", napi_float32_array, h.A, true);
    const int given = !!dx + !!dGain + !!dW + !!db;
    if (given != 0 && given != 4) throw ArgError{"actionLoss: dx, dGain, dW and db must all be given or all be null"};
    out[0] = static_cast<float>(actionLoss(h, dx, dGain, dW, db));
  });
}

// The qkv arguments: x, gain, wq, wk, wv, cos | null, sin | null at 0–6, then B, T, Dm, H, Hk,
// Dh, norm, eps, threads from index `i`.
static Qkv qkvArgs(Args& a, size_t i, const char* fn) {
  Qkv q{};
  q.B = a.integer(i, "B", 1);
  q.T = a.integer(i + 1, "T", 1);
  q.Dm = a.integer(i + 2, "Dm", 1);
  q.H = a.integer(i + 3, "H", 1);
  q.Hk = a.integer(i + 4, "Hk", 1);
  q.Dh = a.integer(i + 5, "Dh", 1);
  q.norm = a.integer(i + 6, "norm", 0);
  q.eps = static_cast<float>(a.number(i + 7, "eps"));
  q.threads = a.integer(i + 8, "threads", 1);
  if (q.norm > NORM_LAYER) throw ArgError{std::string(fn) + ": norm must be 0 (rms) or 1 (layer)"};
  const size_t N = static_cast<size_t>(q.B) * q.T;
  q.x = a.array<float>(0, "x", napi_float32_array, N * q.Dm);
  q.gain = a.array<float>(1, "gain", napi_float32_array, q.Dm);
  q.wq = a.array<float>(2, "wq", napi_float32_array, static_cast<size_t>(q.Dm) * q.H * q.Dh);
  q.wk = a.array<float>(3, "wk", napi_float32_array, static_cast<size_t>(q.Dm) * q.Hk * q.Dh);
  q.wv = a.array<float>(4, "wv", napi_float32_array, static_cast<size_t>(q.Dm) * q.Hk * q.Dh);
  q.cos = a.array<float>(5, "cos", napi_float32_array, static_cast<size_t>(q.T) * q.Dh, true);
  q.sin = a.array<float>(6, "sin", napi_float32_array, static_cast<size_t>(q.T) * q.Dh, true);
  if (!q.cos != !q.sin) throw ArgError{std::string(fn) + ": cos and sin must both be given or both null"};
  if (q.cos && q.Dh % 2) throw ArgError{std::string(fn) + ": RoPE needs an even Dh; got " + std::to_string(q.Dh)};
  return q;
}

// qkvForward(x, gain, wq, wk, wv, cos | null, sin | null, q, k, v, B, T, Dm, H, Hk, Dh, norm, eps,
// threads): q (B, H, T, Dh), k, v (B, Hk, T, Dh) written.
napi_value QkvForward(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "qkvForward");
    const Qkv q = qkvArgs(a, 10, "qkvForward");
    const size_t nq = static_cast<size_t>(q.B) * q.H * q.T * q.Dh, nk = static_cast<size_t>(q.B) * q.Hk * q.T * q.Dh;
    float* qo = a.array<float>(7, "q", napi_float32_array, nq);
    float* ko = a.array<float>(8, "k", napi_float32_array, nk);
    float* vo = a.array<float>(9, "v", napi_float32_array, nk);
    qkvForward(q, qo, ko, vo);
  });
}

// qkvBackward(x, gain, wq, wk, wv, cos | null, sin | null, dq, dk, dv, dx, dGain, dWq, dWk, dWv, B, T,
// Dm, H, Hk, Dh, norm, eps, threads): dx += the gradient through norm and projections; the
// weight gradients are written.
napi_value QkvBackward(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "qkvBackward");
    const Qkv q = qkvArgs(a, 15, "qkvBackward");
    const size_t nq = static_cast<size_t>(q.B) * q.H * q.T * q.Dh, nk = static_cast<size_t>(q.B) * q.Hk * q.T * q.Dh;
    const float* dq = a.array<float>(7, "dq", napi_float32_array, nq);
    const float* dk = a.array<float>(8, "dk", napi_float32_array, nk);
    const float* dv = a.array<float>(9, "dv", napi_float32_array, nk);
    float* dx = a.array<float>(10, "dx", napi_float32_array, static_cast<size_t>(q.B) * q.T * q.Dm);
    float* dGain = a.array<float>(11, "dGain", napi_float32_array, q.Dm);
    float* dWq = a.array<float>(12, "dWq", napi_float32_array, static_cast<size_t>(q.Dm) * q.H * q.Dh);
    float* dWk = a.array<float>(13, "dWk", napi_float32_array, static_cast<size_t>(q.Dm) * q.Hk * q.Dh);
    float* dWv = a.array<float>(14, "dWv", napi_float32_array, static_cast<size_t>(q.Dm) * q.Hk * q.Dh);
    qkvBackward(q, dq, dk, dv, dx, dGain, dWq, dWk, dWv);
  });
}

// The post arguments: x, o, wo, gain, up, down, gate | null at 0–6, then B, T, H, Dh, Dm, F, norm,
// act, eps, threads from index `i`.
static Post postArgs(Args& a, size_t i, const char* fn) {
  Post p{};
  p.B = a.integer(i, "B", 1);
  p.T = a.integer(i + 1, "T", 1);
  p.H = a.integer(i + 2, "H", 1);
  p.Dh = a.integer(i + 3, "Dh", 1);
  Ffn& f = p.ffn;
  f.N = p.B * p.T;
  f.Dm = a.integer(i + 4, "Dm", 1);
  f.F = a.integer(i + 5, "F", 1);
  ffnSettings(a, i + 6, fn, f);
  const size_t W = static_cast<size_t>(p.H) * p.Dh;
  f.x = a.array<float>(0, "x", napi_float32_array, static_cast<size_t>(f.N) * f.Dm);
  p.o = a.array<float>(1, "o", napi_float32_array, static_cast<size_t>(f.N) * W);
  p.wo = a.array<float>(2, "wo", napi_float32_array, W * f.Dm);
  ffnWeights(a, 3, f);
  return p;
}

// Optional trailing x1 (N, Dm), u (N, F), g (N, F) | null from index i: PostKeep (all or none; g
// for SwiGLU).
static PostKeep postKeepArgs(Args& a, size_t i, const Post& p, const char* fn) {
  const Ffn& f = p.ffn;
  const size_t nd = static_cast<size_t>(f.N) * f.Dm, nf = static_cast<size_t>(f.N) * f.F;
  PostKeep k;
  k.x1 = a.array<float>(i, "x1", napi_float32_array, nd, true);
  k.u = a.array<float>(i + 1, "u", napi_float32_array, nf, true);
  k.g = a.array<float>(i + 2, "g", napi_float32_array, nf, true);
  const bool glu = f.act == ACT_SWIGLU;
  if ((k.x1 == nullptr) != (k.u == nullptr) || (k.x1 && glu != (k.g != nullptr)))
    throw ArgError{std::string(fn) + ": the kept x1, u (and g for SwiGLU) come together or not at all"};
  return k;
}

// postForward(x, o, wo, gain, up, down, gate | null, y, B, T, H, Dh, Dm, F, norm, act, eps, threads
// [, x1, u, g | null]): y (B·T, Dm) = x1 + FFN(norm(x1) ∘ gain), x1 = x + merge(o) · wo; with the
// trailing arrays x1 and the FFN's pre-activations are kept there for postBackward.
napi_value PostForward(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "postForward");
    const Post p = postArgs(a, 8, "postForward");
    float* y = a.array<float>(7, "y", napi_float32_array, static_cast<size_t>(p.ffn.N) * p.ffn.Dm);
    postForward(p, y, postKeepArgs(a, 18, p, "postForward"));
  });
}

// postBackward(x, o, wo, gain, up, down, gate | null, dy, dx, dO, dWo, dGain, dUp, dDown, dGate | null,
// B, T, H, Dh, Dm, F, norm, act, eps, threads [, x1, u, g | null]): every gradient written (not
// added); with the trailing arrays (postForward's kept activations) the FFN side is not recomputed.
napi_value PostBackward(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info, "postBackward");
    const Post p = postArgs(a, 15, "postBackward");
    const Ffn& f = p.ffn;
    const size_t nd = static_cast<size_t>(f.N) * f.Dm, w = static_cast<size_t>(f.Dm) * f.F;
    const size_t W = static_cast<size_t>(p.H) * p.Dh;
    const float* dy = a.array<float>(7, "dy", napi_float32_array, nd);
    float* dx = a.array<float>(8, "dx", napi_float32_array, nd);
    float* dO = a.array<float>(9, "dO", napi_float32_array, static_cast<size_t>(f.N) * W);
    float* dWo = a.array<float>(10, "dWo", napi_float32_array, W * f.Dm);
    float* dGain = a.array<float>(11, "dGain", napi_float32_array, f.Dm);
    float* dUp = a.array<float>(12, "dUp", napi_float32_array, w);
    float* dDown = a.array<float>(13, "dDown", napi_float32_array, w);
    float* dGate = a.array<float>(14, "dGate", napi_float32_array, w, f.act != ACT_SWIGLU);
    postBackward(p, dy, dx, dO, dWo, dGain, dUp, dDown, dGate, postKeepArgs(a, 25, p, "postBackward"));
  });
}

// nativeBytes(): [live, peak] bytes of addon buffers held for the calling thread's device.
napi_value NativeBytes(napi_env env, napi_callback_info) {
  ByteCounter& c = byteCounter();
  napi_value out, live, peak;
  napi_create_array_with_length(env, 2, &out);
  napi_create_double(env, static_cast<double>(c.live.load()), &live);
  napi_create_double(env, static_cast<double>(c.peak.load()), &peak);
  napi_set_element(env, out, 0, live);
  napi_set_element(env, out, 1, peak);
  return out;
}

// resetNativePeak(): the calling thread's high-water back to what it holds now.
napi_value ResetNativePeak(napi_env env, napi_callback_info) {
  ByteCounter& c = byteCounter();
  c.peak.store(c.live.load());
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value out;
#if RING_SIMD && defined(__AVX512F__)
  const char* simd = "avx512f+avx2+fma";
#else
  const char* simd = RING_SIMD ? "avx2+fma" : "scalar";
#endif
  napi_create_string_utf8(env, simd, NAPI_AUTO_LENGTH, &out);
  return out;
}

// helperSpin(micros?): the polling time of every helper pool in this process (µs); sets it when
// given (≥ 0), returns the value before.
napi_value HelperSpin(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  const long before = spinMicros();
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  if (type != napi_undefined && type != napi_number) {
    napi_throw_type_error(env, nullptr, "helperSpin: micros must be a number (µs) or absent");
    return nullptr;
  }
  if (type == napi_number) {
    double micros = 0;
    napi_get_value_double(env, argv[0], &micros);
    if (!(micros >= 0) || micros > 1e6) {
      napi_throw_range_error(env, nullptr, "helperSpin: micros must be a number in 0 … 1e6");
      return nullptr;
    }
    spinMicrosSetting.store(static_cast<long>(micros));
  }
  napi_value out;
  napi_create_double(env, static_cast<double>(before), &out);
  return out;
}

// abi(): the calling convention's revision. 2: attnForward's optional lse (the last chunk
// finalises) and rowDot's threads; 3: postForward's and postBackward's kept activations; 4: tanh,
// scatterAddRows, modalityEmbed and modalityEmbedBackward; 5: actionLoss.
// native/addon.ts refuses an older build, which would ignore the new arguments instead of failing.
napi_value Abi(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_int32(env, 5, &out);
  return out;
}

}  // namespace

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
      {"attnForward", nullptr, AttnForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attnBackward", nullptr, AttnBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attnFinalize", nullptr, AttnFinalize, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rowDot", nullptr, RowDot, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgemm", nullptr, Sgemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"exp", nullptr, Exp, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tanh", nullptr, Tanh, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"scatterAddRows", nullptr, ScatterAddRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"modalityEmbed", nullptr, ModalityEmbed, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"modalityEmbedBackward", nullptr, ModalityEmbedBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adamw", nullptr, AdamW, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ffnForward", nullptr, FfnForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ffnBackward", nullptr, FfnBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"qkvForward", nullptr, QkvForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"qkvBackward", nullptr, QkvBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"postForward", nullptr, PostForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"postBackward", nullptr, PostBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"normForward", nullptr, NormForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"normBackward", nullptr, NormBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"headLoss", nullptr, HeadLossFn, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"actionLoss", nullptr, ActionLossFn, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"simd", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"abi", nullptr, Abi, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"helperSpin", nullptr, HelperSpin, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"nativeBytes", nullptr, NativeBytes, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"resetNativePeak", nullptr, ResetNativePeak, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
