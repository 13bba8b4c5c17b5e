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
#include <mutex>

#include "actlab_kernels.h"

namespace actlab_k {
const Entry& lookup(c10::string_view name, int64_t nparams);
std::array<double, kMaxParams> padded(c10::ArrayRef<double> params);
at::Tensor run_forward(const Entry& e, const at::Tensor& x, const double* params);
at::Tensor run_backward(const Entry& e, const at::Tensor& x, const at::Tensor& grad, const double* params);

namespace {

using torch::autograd::variable_list;

struct ActlabFusedBackward : public torch::autograd::Node {
  torch::autograd::SavedVariable x_;
  const Entry* entry = nullptr;
  std::array<double, kMaxParams> params{};
  int64_t nparams = 0;
  std::string kernel;  // the spec's name: what eager_grad needs under create_graph

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
      return {eager.call(x, grad, kernel, c10::ArrayRef<double>(params.data(), nparams))};
    }
    return {run_backward(*entry, x, grad, params.data())};
  }

  std::string name() const override { return "ActlabFusedBackward"; }

  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    x_.reset_data();
  }
};

at::Tensor apply_autograd(const at::Tensor& x, c10::string_view name, c10::ArrayRef<double> params) {
  const Entry& e = lookup(name, static_cast<int64_t>(params.size()));
  auto prm = padded(params);
  at::Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = run_forward(e, x, prm.data());
  }
  if (torch::autograd::compute_requires_grad(x)) {
    auto node = c10::make_intrusive<ActlabFusedBackward>();
    node->set_next_edges(torch::autograd::collect_next_edges(x));
    node->x_ = torch::autograd::SavedVariable(x, /*is_output=*/false);
    node->entry = &e;
    node->params = prm;
    node->nparams = static_cast<int64_t>(params.size());
    node->kernel = std::string(name);
    torch::autograd::set_history(out, node);
  }
  return out;
}

}  // namespace
}  // namespace actlab_k

TORCH_LIBRARY_FRAGMENT(actlab_kernels, m) {
  m.def("apply(Tensor x, str name, float[] params) -> Tensor");
  m.def("eager_grad(Tensor x, Tensor grad, str name, float[] params) -> Tensor");
}

TORCH_LIBRARY_IMPL(actlab_kernels, CPU, m) {
  m.impl("apply", [](const at::Tensor& x, c10::string_view name, c10::ArrayRef<double> params) {
    const actlab_k::Entry& e = actlab_k::lookup(name, static_cast<int64_t>(params.size()));
    return actlab_k::run_forward(e, x, actlab_k::padded(params).data());
  });
}

TORCH_LIBRARY_IMPL(actlab_kernels, Autograd, m) {
  m.impl("apply", &actlab_k::apply_autograd);
}
