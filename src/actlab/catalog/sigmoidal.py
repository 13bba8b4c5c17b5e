"""S-shaped functions: logistic sigmoid and hyperbolic tangent."""

from actlab.catalog._refs import GOODFELLOW_DL, LECUN_EFFICIENT
from actlab.catalog.spec import Equivalent, Spec

SIGMOID = Spec(
    name="sigmoid",
    aliases=("logistic",),
    family="sigmoidal",
    summary="Logistic function 1 / (1 + e^-x); output in (0, 1), f'(x) <= 1/4.",
    definition=lambda x, sp: 1 / (1 + sp.exp(-x)),
    forward=lambda x, ops: ops.sigmoid(x),
    derivative=lambda x, ops: ops.sigmoid(x) * ops.sigmoid(-x),
    derivative_from_output=lambda y, ops: y * (1 - y),
    bounds=(0.0, 1.0),
    monotonic=True,
    saturates=("left", "right"),
    references=(GOODFELLOW_DL,),
    equivalents=(
        Equivalent("pytorch", "torch.sigmoid"),
        Equivalent("keras", "keras.activations.sigmoid"),
        Equivalent("jax", "jax.nn.sigmoid"),
    ),
    torch_native=lambda x, torch: torch.sigmoid(x),
    native=True,
)

TANH = Spec(
    name="tanh",
    family="sigmoidal",
    summary="Hyperbolic tangent; zero-centred, output in (-1, 1), f'(0) = 1.",
    definition=lambda x, sp: sp.tanh(x),
    forward=lambda x, ops: ops.tanh(x),
    derivative=lambda x, ops: 1 - ops.square(ops.tanh(x)),
    derivative_from_output=lambda y, ops: 1 - y * y,
    bounds=(-1.0, 1.0),
    monotonic=True,
    zero_centered=True,
    saturates=("left", "right"),
    references=(LECUN_EFFICIENT,),
    equivalents=(
        Equivalent("pytorch", "torch.tanh"),
        Equivalent("keras", "keras.activations.tanh"),
        Equivalent("jax", "jax.numpy.tanh"),
    ),
    torch_native=lambda x, torch: torch.tanh(x),
    native=True,
)

SPECS = (SIGMOID, TANH)
