// Memory modes (actlab.torch.memory): the forward keeps a bit-packed code per element instead of
// the input, the backward multiplies the incoming gradient by a table entry per code.
//
// A code comes from sorted breakpoints t_1 < ... < t_m (doubles):
// - "count" (fewbit): code = #{j : t_j <= x};
// - "lut" (mask): p = #{t_j < x} + #{t_j <= x} (0..2m: p is even strictly inside segment p/2, odd
//   exactly at breakpoint (p+1)/2), code = lut[p], so a kink point gets its own derivative's code.
// NaN compares false everywhere: p = 0 (the left-most segment's code).
// Float inputs compare with the breakpoints' float neighbours (float_below/float_above), which is
// the exact comparison with the double breakpoint for every float. Codes of `bits` bits (1..4) are
// packed in groups of 8 elements into `bits` bytes (little-endian), so a tensor of n elements
// keeps ceil(n / 8) * bits bytes.
#include "actlab_kernels.h"

#include <tuple>
#include <vector>

namespace actlab_k {
namespace {

constexpr int64_t kChunk = 1 << 16;  // elements per task: a multiple of 8, and x's chunk stays in L2

struct Coder {
  std::vector<double> t;
  std::vector<float> lo, hi;  // largest float <= t_j, smallest float >= t_j
  std::vector<uint8_t> lut;   // empty: "count"
  int bits;
};

Coder make_coder(c10::ArrayRef<double> t, c10::ArrayRef<int64_t> lut, int64_t bits) {
  TORCH_CHECK(bits >= 1 && bits <= 4, "actlab_kernels: codes of 1 to 4 bits, got ", bits);
  TORCH_CHECK(t.size() <= 64, "actlab_kernels: at most 64 breakpoints, got ", t.size());
  Coder c;
  c.bits = static_cast<int>(bits);
  for (size_t j = 0; j < t.size(); ++j) {
    TORCH_CHECK(j == 0 || t[j - 1] <= t[j], "actlab_kernels: breakpoints must be sorted");
    c.t.push_back(t[j]);
    c.lo.push_back(float_below(t[j]));
    c.hi.push_back(float_above(t[j]));
  }
  if (!lut.empty()) {
    TORCH_CHECK(lut.size() == 2 * t.size() + 1, "actlab_kernels: lut needs 2m+1 entries for m breakpoints");
    for (int64_t v : lut) {
      TORCH_CHECK(v >= 0 && v < (int64_t{1} << bits), "actlab_kernels: lut entry ", v, " does not fit ", bits, " bits");
      c.lut.push_back(static_cast<uint8_t>(v));
    }
  } else {
    TORCH_CHECK(static_cast<int64_t>(t.size()) < (int64_t{1} << bits), "actlab_kernels: ", t.size(),
                " breakpoints need more than ", bits, " bits");
  }
  return c;
}

int64_t packed_bytes(int64_t n, int64_t bits) { return (n + 7) / 8 * bits; }

// Appends codes to a group of 8 and writes each full group as `bits` bytes.
struct Packer {
  uint8_t* out;
  int bits;
  uint32_t word = 0;
  int filled = 0;
  inline void push(uint32_t code) {
    word |= code << (bits * filled);
    if (++filled == 8) flush();
  }
  inline void flush() {
    if (filled == 0) return;
    for (int b = 0; b < bits; ++b) out[b] = static_cast<uint8_t>(word >> (8 * b));
    out += bits;
    word = 0;
    filled = 0;
  }
};

// Codes of x[0, n) (float, bfloat16 or float16), vectorised compares.
template <class T>
void encode(const T* x, int64_t n, uint8_t* out, const Coder& c) {
  alignas(64) float buf[kWidth];
  alignas(64) float pv[kWidth];
  const size_t m = c.t.size();
  const bool count = c.lut.empty();
  Packer pack{out, c.bits};
  for (int64_t i = 0; i < n; i += kWidth) {
    const int64_t w = std::min<int64_t>(kWidth, n - i);
    Vf v;
    if constexpr (std::is_same_v<T, float>) {
      v = w == kWidth ? Vf::loadu(x + i) : Vf::loadu(x + i, w);
    } else {
      for (int64_t j = 0; j < kWidth; ++j) buf[j] = j < w ? static_cast<float>(x[i + j]) : 0.0f;
      v = Vf::loadu(buf);
    }
    Vf p(0.0f);
    if (count) {
      for (size_t k = 0; k < m; ++k) p = p + v.ge(Vf(c.hi[k]));
    } else {
      for (size_t k = 0; k < m; ++k) p = p + v.gt(Vf(c.lo[k])) + v.ge(Vf(c.hi[k]));
    }
    if (c.bits == 1 && w == kWidth) {  // a whole vector of 1-bit codes: its bytes from the lane mask
      Vf code = p;
      if (!count) {
        code = Vf(static_cast<float>(c.lut[0]));
        for (size_t k = 1; k < c.lut.size(); ++k)
          code = Vf::blendv(code, Vf(static_cast<float>(c.lut[k])), p == Vf(static_cast<float>(k)));
      }
      const uint32_t lanes = ~static_cast<uint32_t>(code.zero_mask());  // bit j: lane j's code is 1
      for (int64_t b = 0; b < kWidth / 8; ++b) *pack.out++ = static_cast<uint8_t>(lanes >> (8 * b));
      continue;  // (pack holds no partial group here: every earlier vector was whole)
    }
    p.store(pv);
    for (int64_t j = 0; j < w; ++j) {
      const int q = static_cast<int>(pv[j]);
      pack.push(count ? static_cast<uint32_t>(q) : c.lut[q]);
    }
  }
  pack.flush();
}

void encode_double(const double* x, int64_t n, uint8_t* out, const Coder& c) {
  const bool count = c.lut.empty();
  Packer pack{out, c.bits};
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    int q = 0;
    for (double t : c.t) q += count ? (v >= t) : (v > t) + (v >= t);
    pack.push(count ? static_cast<uint32_t>(q) : c.lut[q]);
  }
  pack.flush();
}

void encode_any(const at::Tensor& xc, int64_t start, int64_t n, uint8_t* out, const Coder& c) {
  switch (xc.scalar_type()) {
    case at::kFloat: encode(xc.const_data_ptr<float>() + start, n, out, c); break;
    case at::kBFloat16: encode(xc.const_data_ptr<c10::BFloat16>() + start, n, out, c); break;
    case at::kHalf: encode(xc.const_data_ptr<c10::Half>() + start, n, out, c); break;
    case at::kDouble: encode_double(xc.const_data_ptr<double>() + start, n, out, c); break;
    default: TORCH_CHECK(false, "actlab_kernels: float32, float64, bfloat16 or float16 only, got ", xc.scalar_type());
  }
}

// Codes of a contiguous tensor, chunk by chunk in parallel; `before(start, n)` runs first on each
// chunk (the fused forward: f on the chunk, so x is read from cache by the encoder).
template <class F>
at::Tensor encode_all(const at::Tensor& xc, const Coder& c, const F& before) {
  const int64_t n = xc.numel();
  at::Tensor codes = at::empty({packed_bytes(n, c.bits)}, xc.options().dtype(at::kByte));
  uint8_t* out = codes.data_ptr<uint8_t>();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const int64_t start = k * kChunk;
      const int64_t len = std::min(kChunk, n - start);
      before(start, len);
      encode_any(xc, start, len, out + start / 8 * c.bits, c);
    }
  });
  return codes;
}

void check_cpu(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), "actlab_kernels: CPU tensors only, got ", x.device());
}

at::Tensor codes_op(const at::Tensor& x, c10::ArrayRef<double> t, c10::ArrayRef<int64_t> lut, int64_t bits) {
  check_cpu(x);
  const Coder c = make_coder(t, lut, bits);
  const at::Tensor xc = x.contiguous();
  return encode_all(xc, c, [](int64_t, int64_t) {});
}

std::tuple<at::Tensor, at::Tensor> forward_codes_op(const at::Tensor& x, c10::string_view name,
                                                    c10::ArrayRef<double> params, c10::ArrayRef<double> t,
                                                    c10::ArrayRef<int64_t> lut, int64_t bits) {
  check_cpu(x);
  auto it = table().find(std::string(name));
  TORCH_CHECK(it != table().end(), "actlab_kernels: no kernel named '", std::string(name), "'");
  const Entry& entry = it->second;
  TORCH_CHECK(entry.nparams == static_cast<int64_t>(params.size()), "actlab_kernels: '", std::string(name),
              "' takes ", entry.nparams, " parameters, got ", params.size());
  TORCH_CHECK(static_cast<int64_t>(params.size()) <= kMaxParams, "actlab_kernels: too many parameters");
  const int slot = dtype_slot(x.scalar_type());
  TORCH_CHECK(slot >= 0, "actlab_kernels: float32, bfloat16 or float16 only, got ", x.scalar_type());
  const Coder c = make_coder(t, lut, bits);
  const at::Tensor xc = x.contiguous();
  at::Tensor y = at::empty_like(xc);
  const at::Tensor xf = xc.view(-1);
  const at::Tensor yf = y.view(-1);
  std::array<double, kMaxParams> p{};
  std::copy(params.begin(), params.end(), p.begin());
  at::Tensor codes = encode_all(xc, c, [&](int64_t start, int64_t len) {
    at::Tensor ys = yf.narrow(0, start, len);
    const at::Tensor xs = xf.narrow(0, start, len);
    auto iter = at::TensorIteratorConfig().add_output(ys).add_const_input(xs).build();
    entry.forward[slot](iter, p.data());  // inside a parallel region: runs on this thread
  });
  return {y, codes};
}

// out = g * tab[code], the product in A (float, or double rounded to float and then to T: what the
// fused kernels' float and double forms do, so that a mask gradient is the exact mode's bit for bit);
// float64 tensors: the product in double, rounded once
template <class T, class A>
void scale_range(const uint8_t* codes, const T* g, T* out, int64_t start, int64_t n, const A* tab, int bits) {
  const uint32_t mask = (1u << bits) - 1u;
  codes += start / 8 * bits;
  for (int64_t i = start; i < start + n; i += 8) {
    uint32_t word = 0;
    for (int b = 0; b < bits; ++b) word |= static_cast<uint32_t>(codes[b]) << (8 * b);
    codes += bits;
    const int64_t w = std::min<int64_t>(8, start + n - i);
    for (int64_t j = 0; j < w; ++j) {
      const A product = static_cast<A>(g[i + j]) * tab[(word >> (bits * j)) & mask];
      if constexpr (std::is_same_v<T, double>) out[i + j] = product;
      else out[i + j] = static_cast<T>(static_cast<float>(product));
    }
  }
}

at::Tensor scale_op(const at::Tensor& codes, const at::Tensor& grad, c10::ArrayRef<double> table_values,
                    int64_t bits, bool wide) {
  check_cpu(grad);
  TORCH_CHECK(bits >= 1 && bits <= 4, "actlab_kernels: codes of 1 to 4 bits, got ", bits);
  TORCH_CHECK(static_cast<int64_t>(table_values.size()) == (int64_t{1} << bits), "actlab_kernels: a table of ",
              (int64_t{1} << bits), " values for ", bits, " bits, got ", table_values.size());
  TORCH_CHECK(codes.scalar_type() == at::kByte && codes.is_contiguous(), "actlab_kernels: codes are contiguous uint8");
  const at::Tensor gc = grad.contiguous();
  const int64_t n = gc.numel();
  TORCH_CHECK(codes.numel() == packed_bytes(n, bits), "actlab_kernels: ", codes.numel(), " code bytes for ", n,
              " elements of ", bits, " bits (expected ", packed_bytes(n, bits), ")");
  at::Tensor out = at::empty_like(gc);
  const uint8_t* cp = codes.const_data_ptr<uint8_t>();
  std::vector<double> td(table_values.begin(), table_values.end());
  std::vector<float> tf(td.begin(), td.end());
  const int b = static_cast<int>(bits);
  at::parallel_for(0, (n + kChunk - 1) / kChunk, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) {
      const int64_t start = k * kChunk;
      const int64_t len = std::min(kChunk, n - start);
      switch (gc.scalar_type()) {
        case at::kFloat:
          if (wide) scale_range(cp, gc.const_data_ptr<float>(), out.data_ptr<float>(), start, len, td.data(), b);
          else scale_range(cp, gc.const_data_ptr<float>(), out.data_ptr<float>(), start, len, tf.data(), b);
          break;
        case at::kBFloat16:
          if (wide) scale_range(cp, gc.const_data_ptr<c10::BFloat16>(), out.data_ptr<c10::BFloat16>(), start, len, td.data(), b);
          else scale_range(cp, gc.const_data_ptr<c10::BFloat16>(), out.data_ptr<c10::BFloat16>(), start, len, tf.data(), b);
          break;
        case at::kHalf:
          if (wide) scale_range(cp, gc.const_data_ptr<c10::Half>(), out.data_ptr<c10::Half>(), start, len, td.data(), b);
          else scale_range(cp, gc.const_data_ptr<c10::Half>(), out.data_ptr<c10::Half>(), start, len, tf.data(), b);
          break;
        case at::kDouble:
          scale_range(cp, gc.const_data_ptr<double>(), out.data_ptr<double>(), start, len, td.data(), b);
          break;
        default: TORCH_CHECK(false, "actlab_kernels: float grads only, got ", gc.scalar_type());
      }
    }
  });
  return out;
}

}  // namespace
}  // namespace actlab_k

TORCH_LIBRARY_FRAGMENT(actlab_kernels, m) {
  m.def("mem_codes(Tensor x, float[] t, int[] lut, int bits) -> Tensor");
  m.def("mem_forward(Tensor x, str name, float[] params, float[] t, int[] lut, int bits) -> (Tensor, Tensor)");
  m.def("mem_scale(Tensor codes, Tensor grad, float[] table, int bits, bool wide=False) -> Tensor");
}

TORCH_LIBRARY_IMPL(actlab_kernels, CPU, m) {
  m.impl("mem_codes", &actlab_k::codes_op);
  m.impl("mem_forward", &actlab_k::forward_codes_op);
  m.impl("mem_scale", &actlab_k::scale_op);
}
