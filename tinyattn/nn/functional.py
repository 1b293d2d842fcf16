"""PyTorch's `torch.nn.functional` names, implemented in `tinyattn.functional`."""
from ..functional import (  # noqa: F401
    cross_entropy, dropout, embedding, gelu, layer_norm, linear, log_softmax, mse_loss, relu,
    scaled_dot_product_attention, sigmoid, softmax, tanh,
)
from ..functional.attention import (  # noqa: F401  (torch.nn.attention.bias's names)
    CausalBias, CausalVariant, causal_lower_right, causal_upper_left,
)
from ..functional import (  # noqa: F401,E402  (tensor ops torch.nn.functional also names)
    cosine_similarity, elu, hardtanh, logsigmoid, mish, normalize, one_hot, pad, pairwise_distance, relu6, softplus,
)
from ..functional import (  # noqa: F401,E402  (losses)
    binary_cross_entropy, binary_cross_entropy_with_logits, huber_loss, kl_div, l1_loss, nll_loss, smooth_l1_loss,
)
from ..functional import leaky_relu, silu  # noqa: F401,E402

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "causal_lower_right", "causal_upper_left", "CausalBias",
    "CausalVariant", "cosine_similarity", "cross_entropy", "dropout", "elu", "embedding", "gelu", "hardtanh",
    "huber_loss", "kl_div", "l1_loss", "layer_norm", "leaky_relu", "linear", "log_softmax", "logsigmoid", "mish",
    "mse_loss", "nll_loss", "normalize", "one_hot", "pad", "pairwise_distance", "relu", "relu6",
    "scaled_dot_product_attention", "sigmoid", "silu", "smooth_l1_loss", "softmax", "softplus", "tanh",
]
