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
