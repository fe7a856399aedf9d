"""lipvae_tf: Keras 3 / TensorFlow VAEs with certified robustness (Lipschitz layers and bounds)."""
from lipvae_tf.constraints import BjorckOrthonormal, SpectralClip, finalize_constraints
from lipvae_tf.layers import (
    GroupSort,
    LipschitzConv2D,
    LipschitzConv2DTranspose,
    LipschitzDense,
    MaxMin,
    Scale,
    StdCap,
)
from lipvae_tf.lipschitz import layer_lipschitz_bound, network_lipschitz_bound

__version__ = "0.1.0"

__all__ = [
    "BjorckOrthonormal", "SpectralClip", "finalize_constraints",
    "GroupSort", "LipschitzConv2D", "LipschitzConv2DTranspose", "LipschitzDense", "MaxMin",
    "Scale", "StdCap", "layer_lipschitz_bound", "network_lipschitz_bound",
]
