"""Neural-network building blocks with torch.nn's names."""
from . import functional, init, utils
from .attention import KVCache, LayerKVCache, MultiheadAttention, SelfAttention
from .containers import ModuleDict, ModuleList, Sequential
from .conv import Conv1d
from .layers import GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ReLU
from .loss import CrossEntropyLoss, MSELoss
from .module import Module
from .parameter import Parameter
from .positional import LearnedPositionalEncoding, RotaryEmbedding, SinusoidalPositionalEncoding
from .rnn import RNN
from .transformer import TransformerEncoder, TransformerEncoderLayer
