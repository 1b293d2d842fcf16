"""Neural-network building blocks with torch.nn's names."""
from . import functional, init, utils
from .attention import KVCache, LayerKVCache, MultiheadAttention, SelfAttention
from .activation import (
    ELU, GELU, Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax, Mish, ReLU, ReLU6, Sigmoid, SiLU, Softmax, Softplus, Tanh,
)
from .containers import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .conv import Conv1d
from .layers import Dropout, Embedding, Flatten, Identity, LayerNorm, Linear, Unflatten
from .loss import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss,
)
from .module import Module
from .parameter import Parameter
from .positional import LearnedPositionalEncoding, RotaryEmbedding, SinusoidalPositionalEncoding
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from .transformer import (
    Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
)


__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "Conv1d", "CrossEntropyLoss", "Dropout", "ELU", "Embedding", "Flatten", "GELU",
    "GRU", "GRUCell", "Hardtanh", "HuberLoss", "Identity", "KLDivLoss", "KVCache", "L1Loss", "LayerKVCache",
    "LayerNorm", "LeakyReLU", "LearnedPositionalEncoding", "Linear", "LogSigmoid", "LogSoftmax", "LSTM", "LSTMCell",
    "Mish", "Module", "ModuleDict", "ModuleList", "MSELoss", "MultiheadAttention", "NLLLoss", "Parameter",
    "ParameterDict", "ParameterList", "ReLU", "ReLU6", "RNN", "RNNBase", "RNNCell", "RNNCellBase", "RotaryEmbedding",
    "SelfAttention", "Sequential", "Sigmoid", "SiLU", "SinusoidalPositionalEncoding", "SmoothL1Loss", "Softmax",
    "Softplus", "Tanh", "Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
    "TransformerEncoderLayer", "Unflatten",
]
