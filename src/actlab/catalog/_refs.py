"""References shared by several specs (papers cited by more than one activation)."""

from actlab.catalog.spec import Reference

GOODFELLOW_DL = Reference(
    "Deep Learning, ch. 6", "Goodfellow, Bengio, Courville", 2016, url="https://www.deeplearningbook.org"
)
RAMACHANDRAN_SWISH = Reference("Searching for Activation Functions", "Ramachandran, Zoph, Le", 2017, arxiv="1710.05941")
HENDRYCKS_GELU = Reference("Gaussian Error Linear Units (GELUs)", "Hendrycks, Gimpel", 2016, arxiv="1606.08415")
CLEVERT_ELU = Reference(
    "Fast and Accurate Deep Network Learning by Exponential Linear Units (ELUs)",
    "Clevert, Unterthiner, Hochreiter",
    2015,
    arxiv="1511.07289",
)
KLAMBAUER_SELU = Reference(
    "Self-Normalizing Neural Networks", "Klambauer, Unterthiner, Mayr, Hochreiter", 2017, arxiv="1706.02515"
)
NAIR_HINTON_RELU = Reference(
    "Rectified Linear Units Improve Restricted Boltzmann Machines",
    "Nair, Hinton",
    2010,
    url="https://icml.cc/Conferences/2010/papers/432.pdf",
)
MAAS_LEAKY = Reference(
    "Rectifier Nonlinearities Improve Neural Network Acoustic Models",
    "Maas, Hannun, Ng",
    2013,
    url="https://ai.stanford.edu/~amaas/papers/relu_hybrid_icml2013_final.pdf",
)
XU_RRELU = Reference(
    "Empirical Evaluation of Rectified Activations in Convolutional Network",
    "Xu, Wang, Chen, Li",
    2015,
    arxiv="1505.00853",
)
DAUPHIN_GLU = Reference(
    "Language Modeling with Gated Convolutional Networks", "Dauphin, Fan, Auli, Grangier", 2016, arxiv="1612.08083"
)
SHAZEER_GLU = Reference("GLU Variants Improve Transformer", "Shazeer", 2020, arxiv="2002.05202")
GOODFELLOW_MAXOUT = Reference(
    "Maxout Networks", "Goodfellow, Warde-Farley, Mirza, Courville, Bengio", 2013, arxiv="1302.4389"
)
MARTINS_SPARSEMAX = Reference(
    "From Softmax to Sparsemax: A Sparse Model of Attention and Multi-Label Classification",
    "Martins, Astudillo",
    2016,
    arxiv="1602.02068",
)
PETERS_ENTMAX = Reference("Sparse Sequence-to-Sequence Models", "Peters, Niculae, Martins", 2019, arxiv="1905.05702")
WIKIPEDIA_TABLE = Reference(
    "Activation function (table of activation functions)",
    "Wikipedia contributors",
    2024,
    url="https://en.wikipedia.org/wiki/Activation_function",
)
LECUN_EFFICIENT = Reference(
    "Efficient BackProp", "LeCun, Bottou, Orr, Müller", 1998, url="http://yann.lecun.com/exdb/publis/pdf/lecun-98b.pdf"
)
