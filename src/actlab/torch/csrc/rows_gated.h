// Fused gated units (glu, reglu, geglu, swiglu, gtu, bilinear): out = fA(a) * fB(b) over the two
// halves [a, b] of the split axis, and the gradients of both halves, each in one pass.
//
// The gates fA and fB are the elementwise kernels of the catalog's own specs (sigmoid, gelu, silu,
// tanh, relu; the identity for a plain half), generated into rows_gated.cpp by actlab.torch.rows
// from each spec's `Kernel` with this header's loops; so a gate has the accuracy the catalog
// demands of the elementwise kernel. A group of kWidth pairs takes the float forms where both gates'
// `fast_where` holds (a float product of two values within the catalog's ulps, rounded once more),
// and otherwise the double forms with the product in double, rounded once: a * sigmoid(b) stays
// accurate where sigmoid(b) alone is subnormal or 0 in float (b < -87) but the product is not.
// Near the root of gelu' or silu' (geglu, swiglu) fB' is the catalog's Taylor series there, in float
// as the eager float32 code evaluates it (the elementwise kernels are held to ulps of max |f'|, the
// vjp of a gated unit to ulps of |g a f'(b)|). Backward: ga = g fB(b) fA'(a), gb = g fA(a) fB'(b), the products in double (no overflow or
// underflow of g * a on the way) and rounded once; an exact zero derivative gives an exact 0 (as
// the eager code's where(b > 0, g a, 0) for reglu, whatever a is).
//
// No axis is moved: x (contiguous) is viewed as (outer, 2, M) with M = half the axis times the
// inner dims, so a = x[:, 0] and b = x[:, 1] are contiguous runs of M and the output is (outer, M).
// float32, bfloat16 and float16; the narrow types are widened to float and rounded once at the end.
#pragma once

#include "actlab_kernels.h"

#include <vector>

namespace actlab_k {
namespace gated {

// f(x) = x (bilinear's halves, and the a of every gate but gtu's)
struct Identity {
  static constexpr bool has_fast = true;
  static constexpr bool always_fast = true;
  static constexpr bool has_series = false;
  static inline const double prm[kMaxParams] = {};
  struct Ref {
    static Vd forward(const Vd& x, const double*) { return x; }
    static Vd derivative(const Vd&, const double*) { return Vd(1.0); }
  };
  struct Fast {
    static Vf forward(const Vf& x, const double*) { return x; }
    static Vf derivative(const Vf&, const double*) { return Vf(1.0f); }
  };
};

template <class G>
inline bool fast_ok(const Vf& x) {
  if constexpr (!G::has_fast) {
    return false;
  } else if constexpr (G::always_fast) {
    return true;
  } else {
    return G::Fast::ok(x, G::prm).zero_mask() == 0;
  }
}

template <class T>
inline Vf load_as_float(const T* p, int64_t c, float* buf) {
  if constexpr (std::is_same_v<T, float>) {
    return c == kWidth ? Vf::loadu(p) : Vf::loadu(p, c);
  } else {
    for (int64_t j = 0; j < kWidth; ++j) buf[j] = j < c ? static_cast<float>(p[j]) : 0.0f;
    return Vf::loadu(buf);
  }
}

template <class T>
inline void store_from_float(const Vf& v, T* p, int64_t c, float* buf) {
  if constexpr (std::is_same_v<T, float>) {
    if (c == kWidth) v.store(p);
    else v.store(p, static_cast<int>(c));
  } else {
    v.store(buf);
    for (int64_t j = 0; j < c; ++j) p[j] = static_cast<T>(buf[j]);
  }
}

template <class A, class B>
inline Vf forward_group(const Vf& a, const Vf& b) {
  if constexpr (A::has_fast && B::has_fast) {
    if (fast_ok<A>(a) && fast_ok<B>(b)) return A::Fast::forward(a, A::prm) * B::Fast::forward(b, B::prm);
  }
  Vd a0, a1, b0, b1;
  widen(a, a0, a1);
  widen(b, b0, b1);
  return narrow(A::Ref::forward(a0, A::prm) * B::Ref::forward(b0, B::prm),
                A::Ref::forward(a1, A::prm) * B::Ref::forward(b1, B::prm));
}

// g fB fA' and g fA fB' of one double half; an exact zero derivative gives an exact zero
inline void grads_half(const Vd& g, const Vd& fa, const Vd& da, const Vd& fb, const Vd& db, Vd& ga, Vd& gb) {
  const Vd zero(0.0);
  ga = Vd::blendv((g * fb) * da, zero, da == zero);
  gb = Vd::blendv((g * fa) * db, zero, db == zero);
}

template <class A, class B>
inline void backward_group(const Vf& a, const Vf& b, const Vf& g, Vf& ga, Vf& gb) {
  Vd g0, g1, fa0, fa1, da0, da1, fb0, fb1, db0, db1;
  widen(g, g0, g1);
  bool done = false;
  if constexpr (A::has_fast && B::has_fast) {
    if (fast_ok<A>(a) && fast_ok<B>(b)) {
      widen(A::Fast::forward(a, A::prm), fa0, fa1);
      widen(A::Fast::derivative(a, A::prm), da0, da1);
      widen(B::Fast::forward(b, B::prm), fb0, fb1);
      widen(B::Fast::derivative(b, B::prm), db0, db1);
      done = true;
    }
  }
  if (!done) {
    Vd a0, a1, b0, b1;
    widen(a, a0, a1);
    widen(b, b0, b1);
    fa0 = A::Ref::forward(a0, A::prm);
    fa1 = A::Ref::forward(a1, A::prm);
    da0 = A::Ref::derivative(a0, A::prm);
    da1 = A::Ref::derivative(a1, A::prm);
    fb0 = B::Ref::forward(b0, B::prm);
    fb1 = B::Ref::forward(b1, B::prm);
    db0 = B::Ref::derivative(b0, B::prm);
    db1 = B::Ref::derivative(b1, B::prm);
  }
  // f' near a root where its formula cancels (gelu', silu'): the catalog's Taylor series
  if constexpr (B::has_series) {
    const Vf nf = B::near(b);
    if (nf.zero_mask() != (1 << kWidth) - 1) {  // some lane near the root
      Vd s0, s1, m0, m1;
      widen(B::series(b), s0, s1);
      widen(Vf::blendv(Vf(0.0f), Vf(1.0f), nf), m0, m1);
      db0 = Vd::blendv(db0, s0, m0 == Vd(1.0));
      db1 = Vd::blendv(db1, s1, m1 == Vd(1.0));
    }
  }
  Vd ga0, ga1, gb0, gb1;
  grads_half(g0, fa0, da0, fb0, db0, ga0, gb0);
  grads_half(g1, fa1, da1, fb1, db1, ga1, gb1);
  ga = narrow(ga0, ga1);
  gb = narrow(gb0, gb1);
}

// Work split: blocks of up to kBlock pairs of one outer row (a long half is split between threads,
// many short ones are grouped).
constexpr int64_t kBlock = 4096;

template <class F>
inline void for_blocks(int64_t outer, int64_t M, const F& f) {
  const int64_t nblk = (M + kBlock - 1) / kBlock;
  const int64_t per = std::min(M, kBlock);
  at::parallel_for(0, outer * nblk, std::max<int64_t>(1, 16384 / std::max<int64_t>(per, 1)),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t t = begin; t < end; ++t) {
                       const int64_t o = t / nblk;
                       const int64_t j0 = (t % nblk) * kBlock;
                       f(o, j0, std::min(M, j0 + kBlock));
                     }
                   });
}

template <class A, class B, class T>
void forward_impl(const T* x, T* y, int64_t outer, int64_t M) {
  for_blocks(outer, M, [&](int64_t o, int64_t j0, int64_t j1) {
    alignas(64) float buf[kWidth];
    const T* pa = x + o * 2 * M;
    const T* pb = pa + M;
    T* py = y + o * M;
    for (int64_t i = j0; i < j1; i += kWidth) {
      const int64_t c = std::min(kWidth, j1 - i);
      const Vf a = load_as_float(pa + i, c, buf);
      const Vf b = load_as_float(pb + i, c, buf);
      store_from_float(forward_group<A, B>(a, b), py + i, c, buf);
    }
  });
}

template <class A, class B, class T>
void backward_impl(const T* x, const T* g, T* gx, int64_t outer, int64_t M) {
  for_blocks(outer, M, [&](int64_t o, int64_t j0, int64_t j1) {
    alignas(64) float buf[kWidth];
    const T* pa = x + o * 2 * M;
    const T* pb = pa + M;
    const T* pg = g + o * M;
    T* qa = gx + o * 2 * M;
    T* qb = qa + M;
    for (int64_t i = j0; i < j1; i += kWidth) {
      const int64_t c = std::min(kWidth, j1 - i);
      const Vf a = load_as_float(pa + i, c, buf);
      const Vf b = load_as_float(pb + i, c, buf);
      const Vf gv = load_as_float(pg + i, c, buf);
      Vf ga, gb;
      backward_group<A, B>(a, b, gv, ga, gb);
      store_from_float(ga, qa + i, c, buf);
      store_from_float(gb, qb + i, c, buf);
    }
  });
}

using ForwardImpl = void (*)(const void*, void*, int64_t, int64_t);
using BackwardImpl = void (*)(const void*, const void*, void*, int64_t, int64_t);

struct GatedEntry {
  ForwardImpl forward[3];  // float32, bfloat16, float16 (dtype_slot)
  BackwardImpl backward[3];
};

template <class A, class B, class T>
void forward_erased(const void* x, void* y, int64_t outer, int64_t M) {
  forward_impl<A, B, T>(static_cast<const T*>(x), static_cast<T*>(y), outer, M);
}

template <class A, class B, class T>
void backward_erased(const void* x, const void* g, void* gx, int64_t outer, int64_t M) {
  backward_impl<A, B, T>(static_cast<const T*>(x), static_cast<const T*>(g), static_cast<T*>(gx), outer, M);
}

template <class A, class B>
GatedEntry make_gated() {
  return GatedEntry{
      {&forward_erased<A, B, float>, &forward_erased<A, B, c10::BFloat16>, &forward_erased<A, B, c10::Half>},
      {&backward_erased<A, B, float>, &backward_erased<A, B, c10::BFloat16>, &backward_erased<A, B, c10::Half>}};
}

// defined in the generated rows_gated.cpp
const GatedEntry& lookup(c10::string_view name);

inline int slot(const at::Tensor& x, const char* what) {
  TORCH_CHECK(x.device().is_cpu(), "actlab_kernels.", what, ": CPU tensors only, got ", x.device());
  const int s = dtype_slot(x.scalar_type());
  TORCH_CHECK(s >= 0, "actlab_kernels.", what, ": float32, bfloat16 or float16 only, got ", x.scalar_type());
  return s;
}

// (outer, M) of x split in halves along dim; checks the size is even
inline std::pair<int64_t, int64_t> split_sizes(const at::Tensor& x, int64_t dim, const char* what) {
  TORCH_CHECK(x.dim() >= 1, "actlab_kernels.", what, ": needs at least one dimension");
  const int64_t n = x.size(dim);
  TORCH_CHECK(n % 2 == 0, "actlab_kernels.", what, ": dimension ", dim, " of size ", n, " is not even");
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  return {outer, (n / 2) * inner};
}

// the forward of entry e (rows.cpp's bound calls hold the entry: no lookup per call)
inline at::Tensor forward_with(const GatedEntry& e, const at::Tensor& x, int64_t dim) {
  const int s = slot(x, "gated_forward");
  dim = c10::maybe_wrap_dim(dim, x.dim());
  const auto [outer, M] = split_sizes(x, dim, "gated_forward");
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[dim] /= 2;
  at::Tensor out = at::empty(shape, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() > 0) {
    const at::Tensor xc = x.contiguous();
    e.forward[s](xc.const_data_ptr(), out.mutable_data_ptr(), outer, M);
  }
  return out;
}

inline at::Tensor backward_with(const GatedEntry& e, const at::Tensor& x, const at::Tensor& grad, int64_t dim) {
  const int s = slot(x, "gated_backward");
  dim = c10::maybe_wrap_dim(dim, x.dim());
  const auto [outer, M] = split_sizes(x, dim, "gated_backward");
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[dim] /= 2;
  TORCH_CHECK(grad.scalar_type() == x.scalar_type() && grad.sizes() == c10::IntArrayRef(shape),
              "actlab_kernels.gated_backward: grad of dtype ", grad.scalar_type(), " and shape ", grad.sizes(),
              " for an input of ", x.scalar_type(), " ", x.sizes(), " split along dim ", dim);
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() > 0) {
    const at::Tensor xc = x.contiguous();
    const at::Tensor gc = grad.contiguous();
    e.backward[s](xc.const_data_ptr(), gc.const_data_ptr(), out.mutable_data_ptr(), outer, M);
  }
  return out;
}

inline at::Tensor forward_op(const at::Tensor& x, int64_t dim, c10::string_view name) {
  return forward_with(lookup(name), x, dim);
}

inline at::Tensor backward_op(const at::Tensor& x, const at::Tensor& grad, int64_t dim, c10::string_view name) {
  return backward_with(lookup(name), x, grad, dim);
}

}  // namespace gated
}  // namespace actlab_k
