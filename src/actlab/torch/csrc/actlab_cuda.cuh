// actlab's fused elementwise kernels for CUDA: the shared part. actlab/torch/cuda.py generates, per
// spec and dtype, one forward and one backward `extern "C" __global__` kernel from the spec's
// Kernel double bodies (`struct Ref`, with V = S = double) and compiles them with NVRTC.
//
// Every element is computed in double from the float32/float16/bfloat16 input and rounded to float32
// once (then to the narrow type, as the CPU kernels round it): the double forms are accurate for
// every float32 input, and CUDA's double functions (libdevice, <= 2 ulp in double) are far below a
// float32 ulp. The float `fast_*` bodies are not used here (vector-only; their accuracy leans on
// SLEEF's <= 1-ulp float functions, and CUDA's expf is 2 ulp).
//
// NVRTC compiles this without any header (no <cmath>, no cuda_fp16.h): half and bfloat16 are
// converted by integer arithmetic. The same text also compiles as plain host C++ (g++): there
// `__global__` is defined away and the launch indices are host variables, so a CPU test runs the very
// kernels (grid-stride loops included) that NVRTC compiles (tests/test_cuda.py).
//
// Compiled with --fmad=false (and -ffp-contract=off on the host): two_sum/two_prod are exact only if
// nothing is contracted into an FMA or reassociated; fma() stays explicit.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define ACTLAB_FN __device__ __forceinline__
#define ACTLAB_M(f) ::f
#else  // host C++: the same kernels as plain functions, launched by a host loop
#include <cmath>
#include <cstring>
#define ACTLAB_FN inline
#define ACTLAB_M(f) std::f
#define __global__
struct actlab_dim3 {
  unsigned int x, y, z;
};
// set by the host launcher before each "thread" runs the kernel body
static thread_local actlab_dim3 threadIdx = {0, 0, 0}, blockIdx = {0, 0, 0}, blockDim = {1, 1, 1},
                                gridDim = {1, 1, 1};
#endif

#if defined(__CUDACC_RTC__)
// What the bodies call as std:: on parameters (NVRTC has no <cmath>).
namespace std {
__device__ __forceinline__ double exp(double a) { return ::exp(a); }
__device__ __forceinline__ double expm1(double a) { return ::expm1(a); }
__device__ __forceinline__ double log(double a) { return ::log(a); }
__device__ __forceinline__ double log1p(double a) { return ::log1p(a); }
__device__ __forceinline__ double sqrt(double a) { return ::sqrt(a); }
__device__ __forceinline__ double fma(double a, double b, double c) { return ::fma(a, b, c); }
__device__ __forceinline__ double nearbyint(double a) { return ::nearbyint(a); }
__device__ __forceinline__ double nan(const char* s) { return ::nan(s); }
__device__ __forceinline__ double abs(double a) { return ::fabs(a); }
__device__ __forceinline__ double fabs(double a) { return ::fabs(a); }
__device__ __forceinline__ bool isnan(double a) { return a != a; }
template <class T>
__device__ __forceinline__ const T& max(const T& a, const T& b) { return a < b ? b : a; }
template <class T>
__device__ __forceinline__ const T& min(const T& a, const T& b) { return b < a ? b : a; }
}  // namespace std
#endif

namespace actlab_cu {

// The Ref bodies' vector type, here one double. A class, not `double`, because the bodies are written
// for vectors: they keep masks in V (`V inf_ = abs(x) == inf;`, then `near | inf_`) and mix V with
// double in `?:` (`c == 0.0 ? V(c) : c + a * x`). A mask is 1.0 or 0.0 here; arithmetic with a double
// gives a Vd (double converts implicitly; Vd to double only explicitly, as for vectors).
struct Vd {
  double v;
  ACTLAB_FN Vd() {}
  ACTLAB_FN Vd(double a) : v(a) {}
  ACTLAB_FN explicit operator double() const { return v; }
  ACTLAB_FN Vd operator-() const { return Vd(-v); }
  ACTLAB_FN Vd operator+() const { return *this; }
  ACTLAB_FN Vd& operator+=(Vd a) { v += a.v; return *this; }
  ACTLAB_FN Vd& operator-=(Vd a) { v -= a.v; return *this; }
  ACTLAB_FN Vd& operator*=(Vd a) { v *= a.v; return *this; }
  ACTLAB_FN Vd& operator/=(Vd a) { v /= a.v; return *this; }
};
#define ACTLAB_VD_OP(OP, R, E)                                \
  ACTLAB_FN R operator OP(Vd a, Vd b) { return E(a.v OP b.v); } \
  ACTLAB_FN R operator OP(Vd a, double b) { return E(a.v OP b); } \
  ACTLAB_FN R operator OP(double a, Vd b) { return E(a OP b.v); }
ACTLAB_VD_OP(+, Vd, Vd)
ACTLAB_VD_OP(-, Vd, Vd)
ACTLAB_VD_OP(*, Vd, Vd)
ACTLAB_VD_OP(/, Vd, Vd)
ACTLAB_VD_OP(<, bool, bool)
ACTLAB_VD_OP(<=, bool, bool)
ACTLAB_VD_OP(>, bool, bool)
ACTLAB_VD_OP(>=, bool, bool)
ACTLAB_VD_OP(==, bool, bool)
ACTLAB_VD_OP(!=, bool, bool)
#undef ACTLAB_VD_OP
ACTLAB_FN Vd mask(bool m) { return Vd(m ? 1.0 : 0.0); }
ACTLAB_FN Vd operator&(Vd a, Vd b) { return mask(a.v != 0.0 && b.v != 0.0); }
ACTLAB_FN Vd operator&(bool a, Vd b) { return mask(a && b.v != 0.0); }
ACTLAB_FN Vd operator&(Vd a, bool b) { return mask(a.v != 0.0 && b); }
ACTLAB_FN Vd operator|(Vd a, Vd b) { return mask(a.v != 0.0 || b.v != 0.0); }
ACTLAB_FN Vd operator|(bool a, Vd b) { return mask(a || b.v != 0.0); }
ACTLAB_FN Vd operator|(Vd a, bool b) { return mask(a.v != 0.0 || b); }

constexpr int kMaxParams = 16;  // the kernels take the parameters padded to this many (ops.cpp's kMaxParams)
constexpr double inf = __builtin_bit_cast(double, 0x7ff0000000000000ULL);  // NVRTC has no __builtin_huge_val
constexpr double pi = 3.14159265358979323846;

// ------------------------------------------------------------------------------- the bodies' API
// Each function for double (parameters) and Vd (the input), CUDA's double versions underneath.
#define ACTLAB_UNARY(NAME, IMPL)                                          \
  ACTLAB_FN double NAME(double a) { return ACTLAB_M(IMPL)(a); }         \
  ACTLAB_FN Vd NAME(Vd a) { return Vd(ACTLAB_M(IMPL)(a.v)); }
ACTLAB_UNARY(exp, exp)
ACTLAB_UNARY(expm1, expm1)
ACTLAB_UNARY(log, log)
ACTLAB_UNARY(log1p, log1p)
ACTLAB_UNARY(erf, erf)
ACTLAB_UNARY(erfc, erfc)
ACTLAB_UNARY(tanh, tanh)
ACTLAB_UNARY(sqrt, sqrt)
ACTLAB_UNARY(abs, fabs)
ACTLAB_UNARY(atan, atan)
ACTLAB_UNARY(asinh, asinh)
ACTLAB_UNARY(sin, sin)
ACTLAB_UNARY(cos, cos)
ACTLAB_UNARY(floor, floor)
#undef ACTLAB_UNARY
ACTLAB_FN double copysign(double a, double b) { return ACTLAB_M(copysign)(a, b); }
ACTLAB_FN Vd copysign(Vd a, Vd b) { return Vd(ACTLAB_M(copysign)(a.v, b.v)); }
// an explicit fused multiply-add, rounded once (the only FMA a kernel gets)
ACTLAB_FN double fma(double a, double b, double c) { return ACTLAB_M(fma)(a, b, c); }
ACTLAB_FN Vd fma(Vd a, Vd b, Vd c) { return Vd(ACTLAB_M(fma)(a.v, b.v, c.v)); }
ACTLAB_FN bool isnan(double a) { return a != a; }
ACTLAB_FN bool isnan(Vd a) { return a.v != a.v; }
// where(mask, a, b): a where the mask (a comparison, or comparisons joined by & and |) holds, else b
ACTLAB_FN Vd where(bool m, Vd a, Vd b) { return m ? a : b; }
ACTLAB_FN Vd where(Vd m, Vd a, Vd b) { return m.v != 0.0 ? a : b; }
// NaN-propagating max/min (IEEE maximum/minimum, as torch.maximum and the vector kernels)
ACTLAB_FN double max(double a, double b) { return (a != a || b != b) ? a + b : (a > b ? a : b); }
ACTLAB_FN double min(double a, double b) { return (a != a || b != b) ? a + b : (a < b ? a : b); }
ACTLAB_FN Vd max(Vd a, Vd b) { return Vd(max(a.v, b.v)); }
ACTLAB_FN Vd min(Vd a, Vd b) { return Vd(min(a.v, b.v)); }
ACTLAB_FN Vd sigmoid(Vd a) { return 1.0 / (1.0 + exp(-a)); }
ACTLAB_FN Vd square(Vd a) { return a * a; }
ACTLAB_FN Vd logical_and(Vd a, Vd b) { return a & b; }
ACTLAB_FN Vd logical_or(Vd a, Vd b) { return a | b; }

#include "actlab_eft.h"  // two_sum, two_prod (inlined by actlab/torch/cuda.py)

// ------------------------------------------------------------------------------- bits and dtypes
ACTLAB_FN unsigned int bits_of(float f) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __float_as_uint(f);
#else
  unsigned int u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
ACTLAB_FN float float_of(unsigned int u) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// The float neighbours of a double parameter t: x <= float_below(t) is exactly x <= t for every
// float x (and x >= float_above(t) is x >= t).
ACTLAB_FN float float_below(double t) {
  const float f = static_cast<float>(t);
  if (!(static_cast<double>(f) > t)) return f;
  const unsigned int u = bits_of(f);  // f > t: one float step down (f is never -inf here)
  return u == 0u ? float_of(0x80000001u) : float_of((u & 0x80000000u) ? u + 1u : u - 1u);
}
ACTLAB_FN float float_above(double t) { return -float_below(-t); }

// The storage types: 16-bit patterns (the kernels never do arithmetic in them).
struct half_t {
  unsigned short bits;
};
struct bf16_t {
  unsigned short bits;
};

ACTLAB_FN float to_float(float v) { return v; }
ACTLAB_FN float to_float(bf16_t v) { return float_of(static_cast<unsigned int>(v.bits) << 16); }
ACTLAB_FN float to_float(half_t v) {
  const unsigned int h = v.bits;
  const unsigned int sign = (h & 0x8000u) << 16;
  const unsigned int e = (h >> 10) & 0x1fu;
  const unsigned int m = h & 0x3ffu;
  if (e == 31u) return float_of(sign | 0x7f800000u | (m << 13));  // inf, NaN (payload kept)
  if (e == 0u) {                                                  // zero, subnormal: m 2^-24, exact
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return float_of(sign | ((e + 112u) << 23) | (m << 13));
}

// float -> bfloat16, round to nearest even; NaN stays a (quiet) NaN
ACTLAB_FN bf16_t to_bf16(float f) {
  const unsigned int u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_t{static_cast<unsigned short>((u >> 16) | 0x40u)};
  return bf16_t{static_cast<unsigned short>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}

// float -> float16, round to nearest even (overflow to inf, gradual underflow); NaN stays NaN
ACTLAB_FN half_t to_half(float f) {
  const unsigned int u = bits_of(f);
  const unsigned int sign = (u >> 16) & 0x8000u;
  const unsigned int a = u & 0x7fffffffu;
  unsigned int h;
  if (a > 0x7f800000u) {
    h = 0x7e00u | ((a >> 13) & 0x3ffu);  // quiet NaN, the top of the payload kept
  } else if (a >= 0x477ff000u) {
    h = 0x7c00u;  // >= 65520 (and inf) rounds to inf
  } else if (a >= 0x38800000u) {  // a normal half: rebias the exponent (-112), round the 13 low bits
    h = (a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13;
  } else {  // below 2^-14: a subnormal half (or 0), m 2^-24 with m = M >> s rounded to even
    const unsigned int e = a >> 23;
    if (e < 102u) {  // below 2^-25: rounds to 0
      h = 0u;
    } else {
      const unsigned int mant = (a & 0x7fffffu) | 0x800000u;
      const unsigned int s = 126u - e;  // 14 .. 24
      const unsigned int q = mant >> s;
      const unsigned int rem = mant & ((1u << s) - 1u);
      const unsigned int halfway = 1u << (s - 1u);
      h = q + ((rem > halfway || (rem == halfway && (q & 1u))) ? 1u : 0u);
    }
  }
  return half_t{static_cast<unsigned short>(sign | h)};
}

// A double result to the storage type: rounded to float32 once, then (as the CPU kernels do) to the
// narrow type.
template <class T>
struct Store;
template <>
struct Store<float> {
  static ACTLAB_FN float of(double v) { return static_cast<float>(v); }
};
template <>
struct Store<bf16_t> {
  static ACTLAB_FN bf16_t of(double v) { return to_bf16(static_cast<float>(v)); }
};
template <>
struct Store<half_t> {
  static ACTLAB_FN half_t of(double v) { return to_half(static_cast<float>(v)); }
};

// ------------------------------------------------------------------------------- the loops
// Grid-stride loops over n elements (n < 2^31: the launcher splits larger tensors): y = f(x), and
// dx = g * f'(x) with the product in double, rounded once (the CPU kernels' double path).
template <class R, class T>
ACTLAB_FN void forward_loop(const T* x, T* y, int n, const double* prm) {
  const long long step = static_cast<long long>(blockDim.x) * gridDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const double v = static_cast<double>(to_float(x[i]));
    y[i] = Store<T>::of(static_cast<double>(R::forward(v, prm)));
  }
}

template <class R, class T>
ACTLAB_FN void backward_loop(const T* x, const T* g, T* dx, int n, const double* prm) {
  const long long step = static_cast<long long>(blockDim.x) * gridDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const double v = static_cast<double>(to_float(x[i]));
    const double gv = static_cast<double>(to_float(g[i]));
    dx[i] = Store<T>::of(gv * static_cast<double>(R::derivative(v, prm)));
  }
}

}  // namespace actlab_cu

// The parameter list every kernel takes after its pointers and n (kMaxParams doubles).
#define ACTLAB_PARAMS                                                                                      \
  double p0, double p1, double p2, double p3, double p4, double p5, double p6, double p7, double p8,      \
      double p9, double p10, double p11, double p12, double p13, double p14, double p15
#define ACTLAB_PARAM_ARRAY {p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15}
