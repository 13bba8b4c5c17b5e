// actlab_kernels::apply: the fused forward with its backward registered in C++, so a training step
// on a small tensor costs what PyTorch's own op costs (no Python autograd.Function per call).
// Double backward (create_graph) goes through actlab_kernels::eager_grad, implemented in Python
// from the spec's derivative with differentiable torch ops.
#include <torch/csrc/autograd/custom_function.h>

#include "actlab_kernels.h"

namespace actlab_k {
at::Tensor forward_op(const at::Tensor& x, c10::string_view name, c10::ArrayRef<double> params);
at::Tensor backward_op(const at::Tensor& x, const at::Tensor& grad, c10::string_view name,
                       c10::ArrayRef<double> params);

namespace {

struct Fused : public torch::autograd::Function<Fused> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const std::string& name,
                            const std::vector<double>& params) {
    ctx->save_for_backward({x});
    ctx->saved_data["name"] = name;
    ctx->saved_data["params"] = params;
    at::AutoDispatchBelowADInplaceOrView guard;
    return forward_op(x, name, params);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const std::string name = ctx->saved_data["name"].toStringRef();
    const std::vector<double> params = ctx->saved_data["params"].toDoubleVector();
    at::Tensor grad = grads[0];
    at::Tensor gx;
    if (at::GradMode::is_enabled()) {  // create_graph: a differentiable backward
      static auto eager = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("actlab_kernels::eager_grad", "")
                              .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view,
                                                c10::ArrayRef<double>)>();
      gx = eager.call(x, grad, name, params);
    } else {
      gx = backward_op(x, grad, name, params);
    }
    return {gx, at::Tensor(), at::Tensor()};
  }
};

at::Tensor apply_autograd(const at::Tensor& x, c10::string_view name, c10::ArrayRef<double> params) {
  return Fused::apply(x, std::string(name), params.vec());
}

}  // namespace
}  // namespace actlab_k

TORCH_LIBRARY_FRAGMENT(actlab_kernels, m) {
  m.def("apply(Tensor x, str name, float[] params) -> Tensor");
  m.def("eager_grad(Tensor x, Tensor grad, str name, float[] params) -> Tensor");
}

TORCH_LIBRARY_IMPL(actlab_kernels, CPU, m) {
  m.impl("apply", &actlab_k::forward_op);
}

TORCH_LIBRARY_IMPL(actlab_kernels, Autograd, m) {
  m.impl("apply", &actlab_k::apply_autograd);
}
