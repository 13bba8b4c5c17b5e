// actlab_kernels::apply: the fused forward with its backward registered in C++, so a training step
// on a small tensor costs what PyTorch's own op costs (no Python autograd.Function per call).
//
// The backward is a plain autograd Node, as PyTorch's generated ones (SiluBackward0) are: it keeps
// the input as a SavedVariable (saved_tensors_hooks and "backward through the graph a second time"
// behave as for PyTorch's ops), the kernel's table entry and its padded parameters, so the backward
// neither looks the kernel up nor boxes arguments (torch::autograd::Function<> stores them as
// IValues in a string-keyed map: ~3 us a step on a small tensor).
// Double backward (create_graph) goes through actlab_kernels::eager_grad, implemented in Python
// from the spec's derivative with differentiable torch ops.
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <array>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <tuple>
#include <mutex>
#include <utility>
#include <vector>

#include "actlab_kernels.h"

namespace actlab_k {
const Entry& lookup(c10::string_view name, int64_t nparams);
std::array<double, kMaxParams> padded(c10::ArrayRef<double> params);
at::Tensor run_forward(const Entry& e, const at::Tensor& x, const double* params);
at::Tensor run_backward(const Entry& e, const at::Tensor& x, const at::Tensor& grad, const double* params);

namespace {

using torch::autograd::variable_list;

// A kernel with its parameters, bound once (actlab_kernels::bind) and then called by index: the
// per-call operators take (x, index), so no string or list is boxed per call.
struct Bound {
  const Entry* entry;
  std::array<double, kMaxParams> params;
  int64_t nparams;
  std::string kernel;  // the spec's name: what eager_grad needs under create_graph
};

// Keyed by the name and the parameters' bit patterns: a NaN (an encoded None) compares unequal to
// itself and would break the map's ordering, matching any other key.
using BoundTable = BoundCalls<std::pair<std::string, std::vector<uint64_t>>, Bound>;

BoundTable& bound_table() {
  static BoundTable t;
  return t;
}

const Bound& bound(int64_t id) { return bound_table().at(id, "call"); }

int64_t bind_op(c10::string_view name, c10::ArrayRef<double> params) {
  const Entry& e = lookup(name, static_cast<int64_t>(params.size()));
  std::vector<uint64_t> bits(params.size());
  std::memcpy(bits.data(), params.data(), params.size() * sizeof(double));
  return bound_table().intern(std::make_pair(std::string(name), std::move(bits)), [&] {
    return Bound{&e, padded(params), static_cast<int64_t>(params.size()), std::string(name)};
  });
}

// Tensors off the CPU (CUDA) go through the dispatcher to the operators' implementations for their
// device (registered from Python: actlab/torch/cuda.py); the CPU keeps the direct call.
at::Tensor forward_any(const Bound& b, const at::Tensor& x) {
  if (x.is_cpu()) return run_forward(*b.entry, x, b.params.data());
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("actlab_kernels::forward", "")
                       .typed<at::Tensor(const at::Tensor&, c10::string_view, c10::ArrayRef<double>)>();
  return op.call(x, b.kernel, c10::ArrayRef<double>(b.params.data(), b.nparams));
}

at::Tensor backward_any(const Bound& b, const at::Tensor& x, const at::Tensor& grad) {
  if (x.is_cpu()) return run_backward(*b.entry, x, grad, b.params.data());
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("actlab_kernels::backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view,
                                         c10::ArrayRef<double>)>();
  return op.call(x, grad, b.kernel, c10::ArrayRef<double>(b.params.data(), b.nparams));
}

struct ActlabFusedBackward : public torch::autograd::Node {
  torch::autograd::SavedVariable x_;
  Bound call;  // a copy (a short name stays in the string's own buffer): no lifetime to track

  variable_list apply(variable_list&& grads) override {
    std::lock_guard<std::mutex> lock(mutex_);
    const at::Tensor x = x_.unpack();  // raises if the graph was freed by an earlier backward
    const at::Tensor& grad = grads[0];
    if (!grad.defined()) return {at::Tensor()};
    if (at::GradMode::is_enabled()) {  // create_graph: a differentiable backward
      static auto eager = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("actlab_kernels::eager_grad", "")
                              .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view,
                                                c10::ArrayRef<double>)>();
      return {eager.call(x, grad, call.kernel, c10::ArrayRef<double>(call.params.data(), call.nparams))};
    }
    return {backward_any(call, x, grad)};
  }

  std::string name() const override { return "ActlabFusedBackward"; }

  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    x_.reset_data();
  }
};

// The fused forward, recording the backward node where the input requires grad.
at::Tensor forward_recorded(const Bound& b, const at::Tensor& x) {
  at::Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = forward_any(b, x);
  }
  if (torch::autograd::compute_requires_grad(x)) {
    auto node = c10::make_intrusive<ActlabFusedBackward>();
    node->set_next_edges(torch::autograd::collect_next_edges(x));
    node->x_ = torch::autograd::SavedVariable(x, /*is_output=*/false);
    node->call = b;
    torch::autograd::set_history(out, node);
  }
  return out;
}

at::Tensor apply_autograd(const at::Tensor& x, c10::string_view name, c10::ArrayRef<double> params) {
  const Entry& e = lookup(name, static_cast<int64_t>(params.size()));
  return forward_recorded(Bound{&e, padded(params), static_cast<int64_t>(params.size()), std::string(name)}, x);
}

at::Tensor apply_bound_autograd(const at::Tensor& x, int64_t id) { return forward_recorded(bound(id), x); }

// The kernel's name and parameters of a bound call (the CUDA side looks them up once per id).
std::tuple<std::string, std::vector<double>> bound_info(int64_t id) {
  const Bound& b = bound(id);
  return {b.kernel, std::vector<double>(b.params.begin(), b.params.begin() + b.nparams)};
}

at::Tensor forward_bound(const at::Tensor& x, int64_t id) {
  const Bound& b = bound(id);
  return run_forward(*b.entry, x, b.params.data());
}

}  // namespace
}  // namespace actlab_k

TORCH_LIBRARY_FRAGMENT(actlab_kernels, m) {
  m.def("apply(Tensor x, str name, float[] params) -> Tensor");
  m.def("eager_grad(Tensor x, Tensor grad, str name, float[] params) -> Tensor");
  // eager only (actlab.torch.functional.bound_call): bind once, then call by index
  m.def("bind(str name, float[] params) -> int", &actlab_k::bind_op);
  m.def("forward.bound(Tensor x, int id) -> Tensor");
  m.def("apply.bound(Tensor x, int id) -> Tensor");
  m.def("bound_info(int id) -> (str, float[])", &actlab_k::bound_info);
}


TORCH_LIBRARY_IMPL(actlab_kernels, CPU, m) {
  m.impl("apply", [](const at::Tensor& x, c10::string_view name, c10::ArrayRef<double> params) {
    const actlab_k::Entry& e = actlab_k::lookup(name, static_cast<int64_t>(params.size()));
    return actlab_k::run_forward(e, x, actlab_k::padded(params).data());
  });
  m.impl("forward.bound", &actlab_k::forward_bound);
  m.impl("apply.bound", &actlab_k::forward_bound);
}

TORCH_LIBRARY_IMPL(actlab_kernels, Autograd, m) {
  m.impl("apply", &actlab_k::apply_autograd);
  m.impl("apply.bound", &actlab_k::apply_bound_autograd);
}
