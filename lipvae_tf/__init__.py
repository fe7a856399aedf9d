"""lipvae_tf: Keras 3 / TensorFlow VAEs with certified robustness (Lipschitz layers and bounds)."""
from lipvae_tf.constraints import BjorckOrthonormal, SpectralClip, finalize_constraints
from lipvae_tf.layers import (
    GroupSort,
    LipschitzConv2D,
    LipschitzConv2DTranspose,
    LipschitzDense,
    MaxMin,
    Scale,
    Shift,
    StdCap,
)
from lipvae_tf.lipschitz import (
    layer_lipschitz_bound,
    network_lipschitz_bound,
    register_lipschitz_bound,
)
from lipvae_tf.design import LipschitzBudget, design_budget
from lipvae_tf.model import LipschitzVAE, StandardVAE

__version__ = "0.2.0"

__all__ = [
    "BjorckOrthonormal", "SpectralClip", "finalize_constraints",
    "GroupSort", "LipschitzConv2D", "LipschitzConv2DTranspose", "LipschitzDense", "MaxMin",
    "Scale", "Shift", "StdCap", "layer_lipschitz_bound", "network_lipschitz_bound",
    "register_lipschitz_bound",
    "LipschitzBudget", "design_budget", "LipschitzVAE", "StandardVAE",
]
