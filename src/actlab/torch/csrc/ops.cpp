// The operators: actlab_kernels::forward / backward, looked up by spec name in the table the
// generated files fill, and a probe that reports whether error-free arithmetic survived the build.
#include "actlab_kernels.h"

#include <array>

namespace actlab_k {

std::unordered_map<std::string, Entry>& table() {
  static std::unordered_map<std::string, Entry> entries;
  return entries;
}

// The parameters padded to kMaxParams (the loops copy that many).
std::array<double, kMaxParams> padded(c10::ArrayRef<double> params) {
  TORCH_CHECK(static_cast<int64_t>(params.size()) <= kMaxParams, "actlab_kernels: at most ", kMaxParams,
              " parameters");
  std::array<double, kMaxParams> out{};
  std::copy(params.begin(), params.end(), out.begin());
  return out;
}

const Entry& lookup(c10::string_view name, int64_t nparams) {
  auto it = table().find(std::string(name));
  TORCH_CHECK(it != table().end(), "actlab_kernels: no kernel named '", std::string(name), "'");
  TORCH_CHECK(it->second.nparams == nparams, "actlab_kernels: '", std::string(name), "' takes ",
              it->second.nparams, " parameters, got ", nparams);
  return it->second;
}

namespace {

int slot_of(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), "actlab_kernels: CPU tensors only, got ", x.device());
  const int slot = dtype_slot(x.scalar_type());
  TORCH_CHECK(slot >= 0, "actlab_kernels: float32, bfloat16 or float16 only, got ", x.scalar_type());
  return slot;
}

}  // namespace

// The loops, given the kernel's entry and padded parameters (apply's backward node keeps both).
at::Tensor run_forward(const Entry& e, const at::Tensor& x, const double* params) {
  const int slot = slot_of(x);
  // empty_like keeps a dense input's layout (channels_last stays channels_last), as the fake does.
  at::Tensor out = at::empty_like(x);
  auto iter = at::TensorIteratorConfig().add_output(out).add_const_input(x).build();
  e.forward[slot](iter, params);
  return out;
}

at::Tensor run_backward(const Entry& e, const at::Tensor& x, const at::Tensor& grad, const double* params) {
  const int slot = slot_of(x);
  TORCH_CHECK(grad.scalar_type() == x.scalar_type(), "actlab_kernels: grad dtype ", grad.scalar_type(),
              " differs from the input's ", x.scalar_type());
  TORCH_CHECK(grad.sizes() == x.sizes(), "actlab_kernels: grad shape ", grad.sizes(), " differs from the input's ",
              x.sizes());
  at::Tensor out = at::empty_like(x);
  auto iter = at::TensorIteratorConfig().add_output(out).add_const_input(x).add_const_input(grad).build();
  e.backward[slot](iter, params);
  return out;
}

at::Tensor forward_op(const at::Tensor& x, c10::string_view name, c10::ArrayRef<double> params) {
  return run_forward(lookup(name, static_cast<int64_t>(params.size())), x, padded(params).data());
}

at::Tensor backward_op(const at::Tensor& x, const at::Tensor& grad, c10::string_view name, c10::ArrayRef<double> params) {
  return run_backward(lookup(name, static_cast<int64_t>(params.size())), x, grad, padded(params).data());
}

namespace {

// The rounding errors of a + b (two_sum) and of a * b (two_prod), by the same vector code the
// kernels use, in float (float32 inputs) or double (float64 inputs): rows [sum error, product error].
// If the compiler had contracted or reassociated them they would come out 0 (or wrong).
template <class V>
void probe_rows(const at::Tensor& a, const at::Tensor& b, at::Tensor& out) {
  using S = typename V::value_type;
  const int64_t n = a.numel();
  const S* pa = a.data_ptr<S>();
  const S* pb = b.data_ptr<S>();
  S* po = out.data_ptr<S>();
  for (int64_t i = 0; i < n; i += V::size()) {
    const int64_t c = std::min<int64_t>(V::size(), n - i);
    V s, e, p, q;
    two_sum(V::loadu(pa + i, c), V::loadu(pb + i, c), s, e);
    two_prod(V::loadu(pa + i, c), V::loadu(pb + i, c), p, q);
    e.store(po + i, static_cast<int>(c));
    q.store(po + n + i, static_cast<int>(c));
  }
}

at::Tensor probe(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && a.dim() == 1,
              "actlab_kernels.probe: two vectors of one dtype and length");
  auto ac = a.contiguous();
  auto bc = b.contiguous();
  at::Tensor out = at::empty({2, ac.numel()}, ac.options());
  if (ac.scalar_type() == at::kFloat) {
    probe_rows<Vf>(ac, bc, out);
  } else {
    TORCH_CHECK(ac.scalar_type() == at::kDouble, "actlab_kernels.probe: float32 or float64");
    probe_rows<Vd>(ac, bc, out);
  }
  return out;
}

}  // namespace
}  // namespace actlab_k

TORCH_LIBRARY(actlab_kernels, m) {
  m.def("forward(Tensor x, str name, float[] params) -> Tensor");
  m.def("backward(Tensor x, Tensor grad, str name, float[] params) -> Tensor");
  m.def("probe(Tensor a, Tensor b) -> Tensor");
}

TORCH_LIBRARY_IMPL(actlab_kernels, CPU, m) {
  m.impl("forward", &actlab_k::forward_op);
  m.impl("backward", &actlab_k::backward_op);
  m.impl("probe", &actlab_k::probe);
}
