// Row-fused softmax, log_softmax and softmin (actlab_kernels::softmax_forward / softmax_backward):
// one task per row along `dim` (moved last and made contiguous if it is not already), float32,
// bfloat16 and float16 in, the same dtype out.
//
// The numerics are those of actlab's eager code (catalog/vector.py), with the sums, products and
// divisions in double and each output rounded once:
// - forward: x - max = hi + lo exactly (TwoSum in float), e = exp(hi) (SLEEF's expf, within 1 ulp)
//   times (1 + lo) in double, summed in double; the sum of the non-maximal terms is kept apart
//   from the count of maxima so that log_softmax's log1p(rest + ntop - 1) keeps the maximum's tiny
//   output (-rest); softmax = e / sum, log_softmax = (hi + lo) - log1p(...), in double;
// - softmax backward from the output: w_i (g_i S - T), S = sum w, T = sum g w, except for an entry
//   holding more than half of S (at most one per row), which takes w_i (g_i R - U) with R and U
//   summed over the other entries (g_i S - T would cancel to nothing there);
// - log_softmax backward from the output: g_i - exp(y_i) sum g, the product and sum in double;
// - softmin is softmax of -x; its backward is minus softmax's.
// Infinite entries give the limits (a +inf maximum that occurs once: 1 there, 0 elsewhere) and a
// maximum of +-inf that occurs more than once, or a NaN, makes the row NaN (as the eager code).
// Half and bfloat16 rows are widened to float first (exact) and the double result is rounded to
// float and then to the narrow type (a second rounding that can matter only at an exact float tie).
// Measured (float32, 96 seeded rows of 16 and rows up to 4096): forward within 2 ulp, vjp within 3
// ulp (or 4 ulp of sum |g J|), against the mpmath oracle.
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>

#include "actlab_kernels.h"
#include "rows_gated.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

namespace actlab_k {
namespace {

constexpr int64_t kD = Vd::size();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kInfF = std::numeric_limits<float>::infinity();

// floats p[0, c) (negated when Neg) as a vector; lanes from c on hold `pad`
template <bool Neg>
inline Vf load(const float* p, int64_t c, float pad) {
  Vf v;
  if (c == kWidth) {
    v = Vf::loadu(p);
  } else {
    alignas(64) float t[kWidth];
    for (int64_t j = 0; j < kWidth; ++j) t[j] = j < c ? p[j] : (Neg ? -pad : pad);
    v = Vf::loadu(t);
  }
  return Neg ? Vf(0.0f) - v : v;
}

inline void store(const Vf& v, float* p, int64_t c) {
  if (c == kWidth) v.store(p);
  else v.store(p, static_cast<int>(c));
}

// max(a, b) by one instruction (not NaN-propagating: b where either is NaN)
inline Vf fast_max(const Vf& a, const Vf& b) {
#if defined(CPU_CAPABILITY_AVX512)
  return Vf(_mm512_max_ps(a, b));
#elif defined(CPU_CAPABILITY_AVX2)
  return Vf(_mm256_max_ps(a, b));
#else
  return Vf::blendv(a, b, b > a);
#endif
}

// lanes summed in a fixed order (deterministic)
inline double hsum(const Vd& v) {
  alignas(64) double t[kD];
  v.store(t);
  double s = 0.0;
  for (int64_t j = 0; j < kD; ++j) s += t[j];
  return s;
}

inline float hmax(const Vf& v) {
  alignas(64) float t[kWidth];
  v.store(t);
  float m = -kInfF;
  for (int64_t j = 0; j < kWidth; ++j) {
    if (std::isnan(t[j])) return t[j];
    m = std::max(m, t[j]);
  }
  return m;
}

// x - m = hi + lo exactly (TwoSum; lo is 0 where x or hi is infinite)
inline void shifted(const Vf& x, const Vf& m, Vf& hi, Vf& lo) {
  hi = x - m;
  const Vf bv = hi - x;
  lo = (x - (hi - bv)) - (m + bv);
  lo = Vf::blendv(Vf(0.0f), lo, lo == lo);  // NaN (an infinite x or hi) -> 0
}

// A row with a NaN (all NaN) or an infinite maximum m: the limit where m occurs once, else NaN.
template <bool Neg, bool Log>
void special_row(const float* x, float* y, int64_t n, float m) {
  int64_t count = 0;
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    count += (Neg ? -x[i] : x[i]) == m;
    nan |= std::isnan(x[i]);
  }
  const float at_top = Log ? 0.0f : 1.0f;
  const float below = Log ? -kInfF : 0.0f;
  for (int64_t i = 0; i < n; ++i)
    y[i] = (nan || count > 1) ? std::numeric_limits<float>::quiet_NaN() : ((Neg ? -x[i] : x[i]) == m ? at_top : below);
}

// One row: y = softmax or log_softmax of (Neg ? -x : x). e = exp(x - max) is exp(hi) (float,
// SLEEF's 1-ulp expf) times (1 + lo) in double; sums and the division in double; one rounding.
template <bool Neg, bool Log>
void forward_row(const float* x, float* y, int64_t n, double* scratch) {
  // the maximum (a NaN may be dropped here: it makes the sum below NaN, and the row NaN)
  Vf t0(-kInfF), t1(-kInfF);
  int64_t i = 0;
  for (; i + 2 * kWidth <= n; i += 2 * kWidth) {  // two chains: the max's latency overlaps
    t0 = fast_max(t0, load<Neg>(x + i, kWidth, 0.0f));
    t1 = fast_max(t1, load<Neg>(x + i + kWidth, kWidth, 0.0f));
  }
  for (; i < n; i += kWidth) t0 = fast_max(t0, load<Neg>(x + i, std::min(kWidth, n - i), -kInfF));
  const float mf = hmax(fast_max(t0, t1));
  if (!std::isfinite(mf)) {
    special_row<Neg, Log>(x, y, n, mf);
    return;
  }
  const Vf m(mf);
  const Vf zero(0.0f);
  Vd acc0(0.0), acc1(0.0);
  Vf ntop(0.0f);
  for (int64_t i = 0; i < n; i += kWidth) {
    Vf hi, lo;
    shifted(load<Neg>(x + i, std::min(kWidth, n - i), -kInfF), m, hi, lo);
    Vf e = hi.exp();
    if constexpr (Log) {  // the maxima apart: log1p of the rest keeps the maximum's own output
      const Vf is_top = hi == zero;
      e = Vf::blendv(e, zero, is_top);
      ntop = ntop + Vf::blendv(zero, Vf(1.0f), is_top);
    }
    Vd e0, e1, l0, l1;
    widen(e, e0, e1);
    widen(lo, l0, l1);
    e0 = e0 + e0 * l0;  // exp(hi + lo) = exp(hi) (1 + lo), |lo| <= ulp(hi) / 2
    e1 = e1 + e1 * l1;
    acc0 = acc0 + e0;
    acc1 = acc1 + e1;
    if constexpr (Log) {  // x - max in double, for the output
      Vd h0, h1;
      widen(hi, h0, h1);
      (h0 + l0).store(scratch + i);
      (h1 + l1).store(scratch + i + kD);
    } else {
      e0.store(scratch + i);
      e1.store(scratch + i + kD);
    }
  }
  const double sum = hsum(acc0 + acc1);
  if (std::isnan(sum)) {
    special_row<Neg, Log>(x, y, n, mf);
    return;
  }
  if constexpr (Log) {
    // log sum exp(x - max) = log1p(rest + (ntop - 1))
    alignas(64) float t[kWidth];
    ntop.store(t);
    double k = 0.0;
    for (int64_t j = 0; j < kWidth; ++j) k += t[j];
    const Vd l(std::log1p(sum + (k - 1.0)));
    for (int64_t i = 0; i < n; i += kWidth)
      store(narrow(Vd::loadu(scratch + i) - l, Vd::loadu(scratch + i + kD) - l), y + i, std::min(kWidth, n - i));
  } else {
    const Vd inv(1.0 / sum);
    for (int64_t i = 0; i < n; i += kWidth)
      store(narrow(Vd::loadu(scratch + i) * inv, Vd::loadu(scratch + i + kD) * inv), y + i, std::min(kWidth, n - i));
  }
}

// (sum w, sum g w) over [lo, hi), in double
inline std::pair<double, double> sums(const float* w, const float* g, int64_t lo, int64_t hi) {
  Vd s0(0.0), s1(0.0), t0(0.0), t1(0.0);
  for (int64_t i = lo; i < hi; i += kWidth) {
    const int64_t c = std::min(kWidth, hi - i);
    Vd w0, w1, g0, g1;
    widen(load<false>(w + i, c, 0.0f), w0, w1);
    widen(load<false>(g + i, c, 0.0f), g0, g1);
    s0 = s0 + w0;
    s1 = s1 + w1;
    t0 = t0 + g0 * w0;
    t1 = t1 + g1 * w1;
  }
  return {hsum(s0 + s1), hsum(t0 + t1)};
}

// softmax's vjp from its output w: w_i (g_i S - T); the dominant entry (w_k > S/2) from the sums
// over the others, w_k (g_k R - U) (actlab.catalog.vector._centred). Neg: softmin (minus it).
template <bool Neg>
void softmax_backward_row(const float* w, const float* g, float* out, int64_t n) {
  Vd s0(0.0), s1(0.0), t0(0.0), t1(0.0);
  Vf top(-kInfF);
  for (int64_t i = 0; i < n; i += kWidth) {
    const int64_t c = std::min(kWidth, n - i);
    const Vf wv = load<false>(w + i, c, 0.0f);
    // padding lanes (0) never win: an output that is not a probability vector (all < 0) must not
    // find a "dominant entry" that is not in the row (a NaN makes S NaN: no dominant entry then)
    top = fast_max(top, load<false>(w + i, c, -kInfF));
    Vd w0, w1, g0, g1;
    widen(wv, w0, w1);
    widen(load<false>(g + i, c, 0.0f), g0, g1);
    s0 = s0 + w0;
    s1 = s1 + w1;
    t0 = t0 + g0 * w0;
    t1 = t1 + g1 * w1;
  }
  const double S = hsum(s0 + s1);
  const double T = hsum(t0 + t1);
  const Vd sv(S), tv(T);
  for (int64_t i = 0; i < n; i += kWidth) {
    const int64_t c = std::min(kWidth, n - i);
    Vd w0, w1, g0, g1;
    widen(load<false>(w + i, c, 0.0f), w0, w1);
    widen(load<false>(g + i, c, 0.0f), g0, g1);
    Vd r0 = w0 * (g0 * sv - tv);
    Vd r1 = w1 * (g1 * sv - tv);
    if constexpr (Neg) {
      r0 = Vd(0.0) - r0;
      r1 = Vd(0.0) - r1;
    }
    store(narrow(r0, r1), out + i, c);
  }
  const float wmax = hmax(top);
  if (static_cast<double>(wmax) > 0.5 * S) {  // the dominant entry (at most one)
    int64_t k = 0;
    while (k < n && w[k] != wmax) ++k;
    if (k == n) return;  // (never for a row of the forward's outputs; bounded for any input)
    const auto [r1, u1] = sums(w, g, 0, k);
    const auto [r2, u2] = sums(w, g, k + 1, n);
    const double v = static_cast<double>(w[k]) * (static_cast<double>(g[k]) * (r1 + r2) - (u1 + u2));
    out[k] = static_cast<float>(Neg ? -v : v);
  }
}

// log_softmax's vjp from its output y: g_i - exp(y_i) sum g, the product and difference in double
void log_softmax_backward_row(const float* y, const float* g, float* out, int64_t n) {
  Vd a0(0.0), a1(0.0);
  for (int64_t i = 0; i < n; i += kWidth) {
    Vd g0, g1;
    widen(load<false>(g + i, std::min(kWidth, n - i), 0.0f), g0, g1);
    a0 = a0 + g0;
    a1 = a1 + g1;
  }
  const Vd G(hsum(a0 + a1));
  for (int64_t i = 0; i < n; i += kWidth) {
    const int64_t c = std::min(kWidth, n - i);
    Vd p0, p1, g0, g1;
    widen(load<false>(y + i, c, -kInfF).exp(), p0, p1);
    widen(load<false>(g + i, c, 0.0f), g0, g1);
    store(narrow(g0 - p0 * G, g1 - p1 * G), out + i, c);
  }
}

// ------------------------------------------------------------------------------------- sparse
// sparsemax and entmax15 of one row, in double: z = x - max (sparsemax) or (x - max) / 2 (entmax15).
// tau >= -1 in both (the maximum's own term is at most 1), so only entries with z > -1 can be in the
// support: those are sorted (descending) and the support size found from prefix sums exactly as the
// eager code does (catalog.vector._sorted_prefix); tau from the support in closed form; each output
// is rounded once. Rows with a NaN or an infinite
// maximum: the eager limits (special_row). `cand` is scratch of n doubles.
template <bool Entmax>
void sparse_forward_row(const float* x, float* y, int64_t n, double* cand) {
  Vf t0(-kInfF);
  for (int64_t i = 0; i < n; i += kWidth) t0 = fast_max(t0, load<false>(x + i, std::min(kWidth, n - i), -kInfF));
  const float mf = hmax(t0);
  bool nan = false;
  if (std::isfinite(mf)) {
    for (int64_t i = 0; i < n; ++i) nan |= std::isnan(x[i]);
  }
  if (!std::isfinite(mf) || nan) {
    special_row<false, false>(x, y, n, nan ? std::numeric_limits<float>::quiet_NaN() : mf);
    return;
  }
  const double m = mf;
  const double scale = Entmax ? 0.5 : 1.0;
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double z = (static_cast<double>(x[i]) - m) * scale;
    if (z > -1.0) cand[k++] = z;
  }
  std::sort(cand, cand + k, std::greater<double>());
  // the support size: the number of prefixes k' whose own threshold lies below their last entry
  int64_t size = 0;
  double s1 = 0.0, s2 = 0.0;
  for (int64_t j = 0; j < k; ++j) {
    const double z = cand[j];
    const double kk = static_cast<double>(j + 1);
    s1 += z;
    if constexpr (Entmax) {
      s2 += z * z;
      const double mean = s1 / kk;
      const double ss = s2 - kk * mean * mean;
      const double tau = mean - std::sqrt(std::max((1.0 - ss) / kk, 0.0));
      size += tau <= z;
    } else {
      size += 1.0 + kk * z > s1;
    }
  }
  size = std::max<int64_t>(size, 1);
  double tau;
  if constexpr (Entmax) {
    double mean = 0.0;
    for (int64_t j = 0; j < size; ++j) mean += cand[j];
    mean /= static_cast<double>(size);
    double ss = 0.0;
    for (int64_t j = 0; j < size; ++j) ss += (cand[j] - mean) * (cand[j] - mean);
    // In double this is tau to a few ulps: the support condition tau <= min z keeps (1 - ss) / size
    // away from 0 (>= (mean - min z)^2, and ~1/size when the entries are close), so the eager
    // code's Newton steps (for float32's rounding) change nothing here.
    tau = mean - std::sqrt(std::max((1.0 - ss) / static_cast<double>(size), 0.0));
  } else {
    double s = 0.0;
    for (int64_t j = 0; j < size; ++j) s += cand[j];
    tau = (s - 1.0) / static_cast<double>(size);
  }
  for (int64_t i = 0; i < n; ++i) {
    const double p = std::max((static_cast<double>(x[i]) - m) * scale - tau, 0.0);
    y[i] = static_cast<float>(Entmax ? p * p : p);
  }
}

// sparsemax's vjp from its output: g_i - mean of g over the support, on the support (else 0);
// entmax15's: s_i (g_i S - T) / S with s = sqrt(y) on the support, S = sum s, T = sum g s, the
// dominant entry (s_k > S/2) from the sums over the others (no cancellation, as softmax's).
// A NaN output stays NaN (the eager code's + 0 * y).
template <bool Entmax>
void sparse_backward_row(const float* y, const float* g, float* out, int64_t n) {
  if constexpr (!Entmax) {
    double sum = 0.0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (y[i] > 0.0f) {
        sum += g[i];
        ++count;
      }
    }
    const double mean = sum / static_cast<double>(std::max<int64_t>(count, 1));
    for (int64_t i = 0; i < n; ++i)
      out[i] = std::isnan(y[i]) ? y[i] : (y[i] > 0.0f ? static_cast<float>(static_cast<double>(g[i]) - mean) : 0.0f);
  } else {
    double S = 0.0, T = 0.0, top = 0.0;
    int64_t k = -1;
    for (int64_t i = 0; i < n; ++i) {
      if (y[i] > 0.0f) {
        const double s = std::sqrt(static_cast<double>(y[i]));
        S += s;
        T += s * g[i];
        if (s > top) top = s, k = i;
      }
    }
    const double D = std::max(S, 1.0);
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(y[i])) {
        out[i] = y[i];
      } else if (y[i] > 0.0f) {
        const double s = std::sqrt(static_cast<double>(y[i]));
        out[i] = static_cast<float>(s * (static_cast<double>(g[i]) * S - T) / D);
      } else {
        out[i] = 0.0f;
      }
    }
    if (k >= 0 && top > 0.5 * S) {  // the dominant entry: R and U over the others
      double R = 0.0, U = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        if (i != k && y[i] > 0.0f) {
          const double s = std::sqrt(static_cast<double>(y[i]));
          R += s;
          U += s * g[i];
        }
      }
      out[k] = static_cast<float>(top * (static_cast<double>(g[k]) * R - U) / D);
    }
  }
}

// ------------------------------------------------------------------------------------- rows
int64_t grain_for(int64_t n) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(n, 1)); }

// a row of T as floats: the row itself for float, else widened into buf
template <class T>
inline const float* as_float(const T* p, int64_t n, std::vector<float>& buf) {
  if constexpr (std::is_same_v<T, float>) {
    return p;
  } else {
    for (int64_t j = 0; j < n; ++j) buf[j] = static_cast<float>(p[j]);
    return buf.data();
  }
}

template <class T>
inline float* out_row(T* p, std::vector<float>& buf) {
  if constexpr (std::is_same_v<T, float>) return p;
  else return buf.data();
}

template <class T>
inline void narrow(const float* src, T* dst, int64_t n) {
  if constexpr (!std::is_same_v<T, float>)
    for (int64_t j = 0; j < n; ++j) dst[j] = static_cast<T>(src[j]);
}

template <class T, bool Neg>
void forward_rows(const T* x, T* y, int64_t rows, int64_t n, bool log) {
  at::parallel_for(0, rows, grain_for(n), [&](int64_t begin, int64_t end) {
    // x - max or exp(x - max) of one row, in double; 64-byte aligned (no vector store splits a line)
    std::vector<double> buf(n + kWidth + 8);
    double* scratch = buf.data() + (8 - (reinterpret_cast<uintptr_t>(buf.data()) / sizeof(double)) % 8) % 8;
    const int64_t wide = std::is_same_v<T, float> ? 0 : n;
    std::vector<float> xb(wide), yb(wide);
    for (int64_t r = begin; r < end; ++r) {
      float* yr = out_row(y + r * n, yb);
      const float* xr = as_float(x + r * n, n, xb);
      if (log) forward_row<Neg, true>(xr, yr, n, scratch);
      else forward_row<Neg, false>(xr, yr, n, scratch);
      narrow(yr, y + r * n, n);
    }
  });
}

template <class T, bool Neg>
void backward_rows(const T* y, const T* g, T* out, int64_t rows, int64_t n, bool log) {
  at::parallel_for(0, rows, grain_for(n), [&](int64_t begin, int64_t end) {
    const int64_t wide = std::is_same_v<T, float> ? 0 : n;
    std::vector<float> yb(wide), gb(wide), ob(wide);
    for (int64_t r = begin; r < end; ++r) {
      const float* yr = as_float(y + r * n, n, yb);
      const float* gr = as_float(g + r * n, n, gb);
      float* o = out_row(out + r * n, ob);
      if (log) log_softmax_backward_row(yr, gr, o, n);
      else softmax_backward_row<Neg>(yr, gr, o, n);
      narrow(o, out + r * n, n);
    }
  });
}

template <class T, bool Entmax>
void sparse_forward_rows(const T* x, T* y, int64_t rows, int64_t n) {
  at::parallel_for(0, rows, grain_for(n), [&](int64_t begin, int64_t end) {
    std::vector<double> cand(n);
    const int64_t wide = std::is_same_v<T, float> ? 0 : n;
    std::vector<float> xb(wide), yb(wide);
    for (int64_t r = begin; r < end; ++r) {
      float* yr = out_row(y + r * n, yb);
      sparse_forward_row<Entmax>(as_float(x + r * n, n, xb), yr, n, cand.data());
      narrow(yr, y + r * n, n);
    }
  });
}

template <class T, bool Entmax>
void sparse_backward_rows(const T* y, const T* g, T* out, int64_t rows, int64_t n) {
  at::parallel_for(0, rows, grain_for(n), [&](int64_t begin, int64_t end) {
    const int64_t wide = std::is_same_v<T, float> ? 0 : n;
    std::vector<float> yb(wide), gb(wide), ob(wide);
    for (int64_t r = begin; r < end; ++r) {
      float* o = out_row(out + r * n, ob);
      sparse_backward_row<Entmax>(as_float(y + r * n, n, yb), as_float(g + r * n, n, gb), o, n);
      narrow(o, out + r * n, n);
    }
  });
}

void check(const at::Tensor& x, const char* what) {
  TORCH_CHECK(x.device().is_cpu(), "actlab_kernels.", what, ": CPU tensors only, got ", x.device());
  TORCH_CHECK(dtype_slot(x.scalar_type()) >= 0, "actlab_kernels.", what,
              ": float32, bfloat16 or float16 only, got ", x.scalar_type());
  TORCH_CHECK(x.dim() >= 1, "actlab_kernels.", what, ": needs at least one dimension");
}

template <class F>
void dispatch(at::ScalarType t, bool negate, const F& f) {
  // f(T{}, std::integral_constant<bool, Neg>{})
  auto by_sign = [&](auto tag) {
    if (negate) f(tag, std::true_type{});
    else f(tag, std::false_type{});
  };
  switch (t) {
    case at::kFloat: by_sign(float{}); break;
    case at::kBFloat16: by_sign(c10::BFloat16{}); break;
    case at::kHalf: by_sign(c10::Half{}); break;
    default: TORCH_CHECK(false, "actlab_kernels: unsupported dtype ", t);
  }
}

// The rows of `a` (and of `grad`, for a backward) along `dim`, moved last and made contiguous;
// f(T{}, flag, a_rows, grad_rows or nullptr, out_rows, rows, n) fills the output, moved back.
template <class F>
at::Tensor over_rows(const at::Tensor& a, const at::Tensor* grad, int64_t dim, bool flag, const char* what,
                     const F& f) {
  check(a, what);
  if (grad != nullptr)
    TORCH_CHECK(grad->scalar_type() == a.scalar_type() && grad->sizes() == a.sizes(), "actlab_kernels.", what,
                ": grad of dtype ", grad->scalar_type(), " and shape ", grad->sizes(), " for an output of ",
                a.scalar_type(), " ", a.sizes());
  dim = c10::maybe_wrap_dim(dim, a.dim());
  // the last dim needs no move (and the output is then a plain tensor, not a view)
  const bool last = dim == a.dim() - 1;
  const at::Tensor at_rows = last ? a.contiguous() : a.movedim(dim, -1).contiguous();
  const at::Tensor g_rows =
      grad == nullptr ? at::Tensor() : (last ? grad->contiguous() : grad->movedim(dim, -1).contiguous());
  at::Tensor out = at::empty(at_rows.sizes(), at_rows.options());
  const int64_t n = at_rows.size(-1);
  if (at_rows.numel() > 0) {
    dispatch(a.scalar_type(), flag, [&](auto tag, auto fl) {
      using T = decltype(tag);
      f(tag, fl, at_rows.const_data_ptr<T>(), grad != nullptr ? g_rows.const_data_ptr<T>() : nullptr,
        out.mutable_data_ptr<T>(), at_rows.numel() / n, n);
    });
  }
  return last ? out : out.movedim(-1, dim);
}

at::Tensor softmax_forward(const at::Tensor& x, int64_t dim, bool log, bool negate) {
  return over_rows(x, nullptr, dim, negate, "softmax_forward", [&](auto tag, auto neg, auto in, auto, auto out,
                                                                   int64_t rows, int64_t n) {
    forward_rows<decltype(tag), decltype(neg)::value>(in, out, rows, n, log);
  });
}

at::Tensor softmax_backward(const at::Tensor& y, const at::Tensor& grad, int64_t dim, bool log, bool negate) {
  return over_rows(y, &grad, dim, negate, "softmax_backward", [&](auto tag, auto neg, auto in, auto g, auto out,
                                                                  int64_t rows, int64_t n) {
    backward_rows<decltype(tag), decltype(neg)::value>(in, g, out, rows, n, log);
  });
}

at::Tensor sparse_forward(const at::Tensor& x, int64_t dim, bool entmax) {
  return over_rows(x, nullptr, dim, entmax, "sparse_forward", [&](auto tag, auto ent, auto in, auto, auto out,
                                                                  int64_t rows, int64_t n) {
    sparse_forward_rows<decltype(tag), decltype(ent)::value>(in, out, rows, n);
  });
}

at::Tensor sparse_backward(const at::Tensor& y, const at::Tensor& grad, int64_t dim, bool entmax) {
  return over_rows(y, &grad, dim, entmax, "sparse_backward", [&](auto tag, auto ent, auto in, auto g, auto out,
                                                                 int64_t rows, int64_t n) {
    sparse_backward_rows<decltype(tag), decltype(ent)::value>(in, g, out, rows, n);
  });
}

// ------------------------------------------------------------------------------------- crelu
// crelu: [max(x, 0), max(-x, 0)] concatenated along dim (which doubles). x (contiguous) is viewed
// as (outer, M), M = dim's size times the inner dims, and the output as (outer, 2, M), so both
// halves are contiguous runs. As torch.clamp_min in the eager code: a NaN stays NaN in both halves
// and a zero keeps its sign;
// the backward is (x > 0 ? g+ : 0) - (x < 0 ? g- : 0) (the eager where()s; 0 at x = 0 and NaN).
// Each value is one input or gradient entry (or its negation): exact in every dtype.
inline std::pair<int64_t, int64_t> outer_and_run(const at::Tensor& x, int64_t dim) {
  int64_t outer = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  return {outer, outer > 0 ? x.numel() / outer : 0};
}

template <class T>
void crelu_forward_rows(const T* x, T* y, int64_t outer, int64_t M) {
  at::parallel_for(0, outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(M, 1)), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const T* px = x + o * M;
      T* pp = y + o * 2 * M;
      T* pn = pp + M;
      for (int64_t j = 0; j < M; ++j) {
        const float v = static_cast<float>(px[j]);
        const float w = -v;
        pp[j] = static_cast<T>(v < 0.0f ? 0.0f : v);  // clamp_min(x, 0): NaN and -0 kept
        pn[j] = static_cast<T>(w < 0.0f ? 0.0f : w);
      }
    }
  });
}

template <class T>
void crelu_backward_rows(const T* x, const T* g, T* gx, int64_t outer, int64_t M) {
  at::parallel_for(0, outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(M, 1)), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const T* px = x + o * M;
      const T* gp = g + o * 2 * M;
      const T* gn = gp + M;
      T* out = gx + o * M;
      for (int64_t j = 0; j < M; ++j) {
        const float v = static_cast<float>(px[j]);
        const float a = v > 0.0f ? static_cast<float>(gp[j]) : 0.0f;
        const float c = v < 0.0f ? static_cast<float>(gn[j]) : 0.0f;
        out[j] = static_cast<T>(a - c);
      }
    }
  });
}

template <class F>
void by_dtype(at::ScalarType t, const F& f) {
  switch (t) {
    case at::kFloat: f(float{}); break;
    case at::kBFloat16: f(c10::BFloat16{}); break;
    case at::kHalf: f(c10::Half{}); break;
    default: TORCH_CHECK(false, "actlab_kernels: unsupported dtype ", t);
  }
}

at::Tensor crelu_forward(const at::Tensor& x, int64_t dim) {
  check(x, "crelu_forward");
  dim = c10::maybe_wrap_dim(dim, x.dim());
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[dim] *= 2;
  at::Tensor out = at::empty(shape, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (x.numel() > 0) {
    const at::Tensor xc = x.contiguous();
    const auto [outer, M] = outer_and_run(xc, dim);
    by_dtype(x.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      crelu_forward_rows<T>(xc.const_data_ptr<T>(), out.mutable_data_ptr<T>(), outer, M);
    });
  }
  return out;
}

at::Tensor crelu_backward(const at::Tensor& x, const at::Tensor& grad, int64_t dim) {
  check(x, "crelu_backward");
  dim = c10::maybe_wrap_dim(dim, x.dim());
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[dim] *= 2;
  TORCH_CHECK(grad.scalar_type() == x.scalar_type() && grad.sizes() == c10::IntArrayRef(shape),
              "actlab_kernels.crelu_backward: grad of dtype ", grad.scalar_type(), " and shape ", grad.sizes(),
              " for an input of ", x.scalar_type(), " ", x.sizes(), " doubled along dim ", dim);
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (x.numel() > 0) {
    const at::Tensor xc = x.contiguous();
    const at::Tensor gc = grad.contiguous();
    const auto [outer, M] = outer_and_run(xc, dim);
    by_dtype(x.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      crelu_backward_rows<T>(xc.const_data_ptr<T>(), gc.const_data_ptr<T>(), out.mutable_data_ptr<T>(), outer, M);
    });
  }
  return out;
}

// ------------------------------------------------------------------------------------- maxout
// maxout: the maximum over groups of k consecutive entries along dim (which shrinks k-fold). x
// (contiguous) is viewed as (outer, C/k, k, inner) and the output as (outer, C/k, inner). As the
// eager code: a NaN in a group makes its output NaN (amax), and the backward sends the whole
// gradient to the first maximal entry (or the first NaN), 0 elsewhere. Exact in every dtype.
// m[j] = the maximum of group entries p[q * inner + j], q < k: a NaN entry (or a larger one) takes
// over, a NaN m stays. Selects over runs of `inner` (vectorisable), not branches (random data would
// mispredict half of them).
template <class T>
inline void group_max(const T* p, int64_t k, int64_t inner, float* m) {
  for (int64_t j = 0; j < inner; ++j) m[j] = static_cast<float>(p[j]);
  for (int64_t q = 1; q < k; ++q) {
    const T* row = p + q * inner;
    for (int64_t j = 0; j < inner; ++j) {
      const float v = static_cast<float>(row[j]);
      m[j] = ((!(v <= m[j])) & (m[j] == m[j])) ? v : m[j];
    }
  }
}

inline int64_t maxout_grain(int64_t k, int64_t inner) {
  return std::max<int64_t>(1, 8192 / std::max<int64_t>(k * inner, 1));
}

// The last axis (inner == 1): groups of k contiguous entries, one selection chain each; K > 0 fixes
// k at compile time (k = 2, the common case, runs vectorised over groups)
// the maximum of kk contiguous entries, NaN-propagating (a NaN, once met, stays)
template <class T>
inline float last_group_max(const T* p, int64_t kk) {
  float m = static_cast<float>(p[0]);
  for (int64_t q = 1; q < kk; ++q) {
    const float v = static_cast<float>(p[q]);
    m = ((!(v <= m)) & (m == m)) ? v : m;
  }
  return m;
}

template <int64_t K, class T>
inline void maxout_last_forward(const T* x, T* y, int64_t b, int64_t e, int64_t k) {
  const int64_t kk = K > 0 ? K : k;
  for (int64_t t = b; t < e; ++t) y[t] = static_cast<T>(last_group_max(x + t * kk, kk));
}

template <class T>
void maxout_forward_rows(const T* x, T* y, int64_t groups, int64_t k, int64_t inner) {
  if (inner == 1) {
    at::parallel_for(0, groups, 16384, [&](int64_t b, int64_t e) {
      if (k == 2) maxout_last_forward<2>(x, y, b, e, k);
      else maxout_last_forward<0>(x, y, b, e, k);
    });
    return;
  }
  // group t (of outer * C/k) holds k runs of `inner` entries from x + t * k * inner
  at::parallel_for(0, groups, maxout_grain(k, inner), [&](int64_t b, int64_t e) {
    std::vector<float> m(inner);
    for (int64_t t = b; t < e; ++t) {
      group_max(x + t * k * inner, k, inner, m.data());
      T* q = y + t * inner;
      for (int64_t j = 0; j < inner; ++j) q[j] = static_cast<T>(m[j]);
    }
  });
}

template <int64_t K, class T>
inline void maxout_last_backward(const T* x, const T* g, T* gx, int64_t b, int64_t e, int64_t k) {
  const int64_t kk = K > 0 ? K : k;
  for (int64_t t = b; t < e; ++t) {
    const T* p = x + t * kk;
    const float m = last_group_max(p, kk);
    bool done = false;
    for (int64_t q = 0; q < kk; ++q) {  // the first entry equal to m (or NaN) takes the gradient
      const float v = static_cast<float>(p[q]);
      const bool hit = ((v == m) | (v != v)) & !done;
      gx[t * kk + q] = hit ? g[t] : static_cast<T>(0.0f);
      done |= hit;
    }
  }
}

template <class T>
void maxout_backward_rows(const T* x, const T* g, T* gx, int64_t groups, int64_t k, int64_t inner) {
  if (inner == 1) {
    at::parallel_for(0, groups, 16384, [&](int64_t b, int64_t e) {
      if (k == 2) maxout_last_backward<2>(x, g, gx, b, e, k);
      else maxout_last_backward<0>(x, g, gx, b, e, k);
    });
    return;
  }
  at::parallel_for(0, groups, maxout_grain(k, inner), [&](int64_t b, int64_t e) {
    std::vector<float> m(inner);
    std::vector<uint8_t> done(inner);
    for (int64_t t = b; t < e; ++t) {
      const T* p = x + t * k * inner;
      const T* gt = g + t * inner;
      T* out = gx + t * k * inner;
      group_max(p, k, inner, m.data());
      std::fill(done.begin(), done.end(), uint8_t{0});
      for (int64_t q = 0; q < k; ++q) {  // the gradient to the first entry equal to m (or NaN), 0 elsewhere
        for (int64_t j = 0; j < inner; ++j) {
          const float v = static_cast<float>(p[q * inner + j]);
          const uint8_t hit = static_cast<uint8_t>(((v == m[j]) | (v != v)) & (done[j] == 0));
          out[q * inner + j] = hit ? gt[j] : static_cast<T>(0.0f);
          done[j] |= hit;
        }
      }
    }
  });
}

// (groups, inner) of x grouped by k along dim; checks the size is divisible
inline std::pair<int64_t, int64_t> maxout_sizes(const at::Tensor& x, int64_t dim, int64_t k, const char* what) {
  TORCH_CHECK(k >= 1, "actlab_kernels.", what, ": pieces must be at least 1, got ", k);
  const int64_t c = x.size(dim);
  TORCH_CHECK(c % k == 0, "actlab_kernels.", what, ": dimension ", dim, " of size ", c, " is not divisible by ", k);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  return {outer * (c / k), inner};
}

at::Tensor maxout_forward(const at::Tensor& x, int64_t dim, int64_t k) {
  check(x, "maxout_forward");
  dim = c10::maybe_wrap_dim(dim, x.dim());
  const auto [groups, inner] = maxout_sizes(x, dim, k, "maxout_forward");
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[dim] /= k;
  at::Tensor out = at::empty(shape, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() > 0) {
    const at::Tensor xc = x.contiguous();
    by_dtype(x.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      maxout_forward_rows<T>(xc.const_data_ptr<T>(), out.mutable_data_ptr<T>(), groups, k, inner);
    });
  }
  return out;
}

at::Tensor maxout_backward(const at::Tensor& x, const at::Tensor& grad, int64_t dim, int64_t k) {
  check(x, "maxout_backward");
  dim = c10::maybe_wrap_dim(dim, x.dim());
  const auto [groups, inner] = maxout_sizes(x, dim, k, "maxout_backward");
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[dim] /= k;
  TORCH_CHECK(grad.scalar_type() == x.scalar_type() && grad.sizes() == c10::IntArrayRef(shape),
              "actlab_kernels.maxout_backward: grad of dtype ", grad.scalar_type(), " and shape ", grad.sizes(),
              " for an input of ", x.scalar_type(), " ", x.sizes(), " grouped by ", k, " along dim ", dim);
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() > 0) {
    const at::Tensor xc = x.contiguous();
    const at::Tensor gc = grad.contiguous();
    by_dtype(x.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      maxout_backward_rows<T>(xc.const_data_ptr<T>(), gc.const_data_ptr<T>(), out.mutable_data_ptr<T>(), groups, k,
                              inner);
    });
  }
  return out;
}

// ------------------------------------------------------------------------------------- autograd
// actlab_kernels::row_apply(x, dim, id): a row kernel bound once (row_bind) with its backward as a
// plain C++ autograd Node, as autograd.cpp does for the elementwise kernels: one dispatcher call per
// training step from Python, no torch.autograd.Function. The node keeps what the Python Functions
// kept (rows.py): the output for float32 softmax/log_softmax/softmin/sparsemax/entmax15, the input
// for half precision (the backward recomputes the float32 output from it), for the gated units,
// crelu and maxout, as a SavedVariable (saved_tensors_hooks, and "backward through the graph a second time", behave
// as for PyTorch's own ops). Under create_graph the backward is actlab_kernels::row_eager_grad,
// implemented in Python from the spec's vjp with differentiable torch ops (double backward).

enum class RowKind : int64_t { Softmax = 0, Sparse = 1, Gated = 2, Crelu = 3, Maxout = 4 };

struct RowCall {
  RowKind kind;
  bool flag;    // Softmax: log_softmax; Sparse: entmax15
  bool negate;  // Softmax: softmin
  const gated::GatedEntry* gated;  // Gated: the entry (no lookup per call)
  int64_t size;                    // Maxout: the pieces per group (else 1)
  std::string name;                // the spec's name, for row_eager_grad
};

// bounded by the row kernels (a dozen) and maxout's piece counts in use
using RowTable = BoundCalls<std::tuple<std::string, int64_t, bool, bool, int64_t>, RowCall>;

RowTable& row_table() {
  static RowTable t;
  return t;
}

const RowCall& row_call(int64_t id) { return row_table().at(id, "row kernel"); }

int64_t row_bind(c10::string_view name, int64_t kind, bool flag, bool negate, int64_t size) {
  TORCH_CHECK(kind >= 0 && kind <= 4,
              "actlab_kernels.row_bind: kind 0 (softmax), 1 (sparse), 2 (gated), 3 (crelu) or 4 (maxout), got ", kind);
  TORCH_CHECK(size >= 1, "actlab_kernels.row_bind: size must be at least 1, got ", size);
  const RowKind k = static_cast<RowKind>(kind);
  const gated::GatedEntry* entry = k == RowKind::Gated ? &gated::lookup(name) : nullptr;  // raises if unknown
  return row_table().intern(std::make_tuple(std::string(name), kind, flag, negate, size),
                            [&] { return RowCall{k, flag, negate, entry, size, std::string(name)}; });
}

// The forward as it runs, and whether the node keeps the output (else the input)
at::Tensor row_forward(const RowCall& c, const at::Tensor& x, int64_t dim) {
  switch (c.kind) {
    case RowKind::Softmax: return softmax_forward(x, dim, c.flag, c.negate);
    case RowKind::Sparse: return sparse_forward(x, dim, c.flag);
    case RowKind::Crelu: return crelu_forward(x, dim);
    case RowKind::Maxout: return maxout_forward(x, dim, c.size);
    default: return gated::forward_with(*c.gated, x, dim);
  }
}

bool keeps_output(const RowCall& c, const at::Tensor& x) {
  return (c.kind == RowKind::Softmax || c.kind == RowKind::Sparse) && x.scalar_type() == at::kFloat;
}

// The vjp from what the node kept: the output y (float32), or the input x (gated units, crelu,
// maxout; half precision, whose rounded output has lost the digits the vjp needs: y recomputed in
// float32, the result rounded once, as the eager path does)
at::Tensor row_backward(const RowCall& c, const at::Tensor& saved, const at::Tensor& grad, int64_t dim) {
  if (c.kind == RowKind::Gated) return gated::backward_with(*c.gated, saved, grad, dim);
  if (c.kind == RowKind::Crelu) return crelu_backward(saved, grad, dim);
  if (c.kind == RowKind::Maxout) return maxout_backward(saved, grad, dim, c.size);
  const bool low = saved.scalar_type() != at::kFloat;
  const at::Tensor y = low ? row_forward(c, saved.to(at::kFloat), dim) : saved;
  const at::Tensor g = low ? grad.to(at::kFloat) : grad;
  const at::Tensor gx =
      c.kind == RowKind::Softmax ? softmax_backward(y, g, dim, c.flag, c.negate) : sparse_backward(y, g, dim, c.flag);
  return low ? gx.to(saved.scalar_type()) : gx;
}

struct ActlabRowBackward : public torch::autograd::Node {
  torch::autograd::SavedVariable saved_;
  const RowCall* call = nullptr;  // an entry of the append-only table: valid for the process
  int64_t dim = 0;
  bool output = false;  // saved_ holds the output

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    std::lock_guard<std::mutex> lock(mutex_);
    // raises if the graph was freed by an earlier backward; an output unpacks with this node as
    // its grad_fn (what a create_graph backward differentiates through)
    const at::Tensor saved = saved_.unpack(output ? getptr() : nullptr);
    const at::Tensor& grad = grads[0];
    if (!grad.defined()) return {at::Tensor()};
    if (at::GradMode::is_enabled()) {  // create_graph: a differentiable backward
      static auto eager = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("actlab_kernels::row_eager_grad", "")
                              .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, c10::string_view,
                                                int64_t)>();
      return {eager.call(saved, grad, dim, call->name, call->size)};
    }
    return {row_backward(*call, saved, grad, dim)};
  }

  std::string name() const override { return "ActlabRowBackward"; }

  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    saved_.reset_data();
  }
};

at::Tensor row_apply_cpu(const at::Tensor& x, int64_t dim, int64_t id) {
  return row_forward(row_call(id), x, dim);
}

at::Tensor row_apply_autograd(const at::Tensor& x, int64_t dim, int64_t id) {
  const RowCall& c = row_call(id);
  dim = c10::maybe_wrap_dim(dim, x.dim());
  at::Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = row_forward(c, x, dim);
  }
  if (torch::autograd::compute_requires_grad(x)) {
    auto node = c10::make_intrusive<ActlabRowBackward>();
    node->set_next_edges(torch::autograd::collect_next_edges(x));
    node->call = &c;
    node->dim = dim;
    node->output = keeps_output(c, x);
    torch::autograd::set_history(out, node);
    // (after set_history: a saved output records its grad_fn)
    node->saved_ = torch::autograd::SavedVariable(node->output ? out : x, /*is_output=*/node->output);
  }
  return out;
}

}  // namespace
}  // namespace actlab_k

TORCH_LIBRARY_FRAGMENT(actlab_kernels, m) {
  // the row kernels bound once (actlab.torch.rows.bind), then run by index with the autograd node
  m.def("row_bind(str name, int kind, bool flag, bool negate, int size=1) -> int", &actlab_k::row_bind);
  m.def("row_apply(Tensor x, int dim, int id) -> Tensor");
  m.def("row_eager_grad(Tensor saved, Tensor grad, int dim, str name, int size=1) -> Tensor");
  m.def("softmax_forward(Tensor x, int dim, bool log=False, bool negate=False) -> Tensor");
  m.def("softmax_backward(Tensor y, Tensor grad, int dim, bool log=False, bool negate=False) -> Tensor");
  m.def("sparse_forward(Tensor x, int dim, bool entmax=False) -> Tensor");
  m.def("sparse_backward(Tensor y, Tensor grad, int dim, bool entmax=False) -> Tensor");
}

TORCH_LIBRARY_IMPL(actlab_kernels, CPU, m) {
  m.impl("softmax_forward", &actlab_k::softmax_forward);
  m.impl("softmax_backward", &actlab_k::softmax_backward);
  m.impl("sparse_forward", &actlab_k::sparse_forward);
  m.impl("sparse_backward", &actlab_k::sparse_backward);
  m.impl("row_apply", &actlab_k::row_apply_cpu);
}

TORCH_LIBRARY_IMPL(actlab_kernels, Autograd, m) { m.impl("row_apply", &actlab_k::row_apply_autograd); }
