// Error-free transformations (Knuth's TwoSum, Dekker's product via one FMA): s + e == a + b and
// p + e == a * b exactly, as long as nothing is contracted or reassociated. Shared by the CPU kernels
// (actlab_kernels.h: V = Vectorized<float|double>) and the CUDA ones (actlab_cuda.cuh: V = scalar
// double; actlab/torch/cuda.py inlines this file, NVRTC gets no include path). Included inside the
// including header's namespace, after its `fma` and ACTLAB_FN.
#ifndef ACTLAB_FN
#define ACTLAB_FN inline
#endif
template <class V>
ACTLAB_FN void two_sum(const V& a, const V& b, V& s, V& e) {
  s = a + b;
  V bb = s - a;
  e = (a - (s - bb)) + (b - bb);
}
template <class V>
ACTLAB_FN void two_prod(const V& a, const V& b, V& p, V& e) {
  p = a * b;
  e = fma(a, b, V(0) - p);
}
