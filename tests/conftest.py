import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lipvae_tf import data  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def images():
    """The bundled sample's first 1024 training and 256 test images (float32 in [0, 1]);
    modules that need other images define their own `images` fixture."""
    train, _ = data.load_sample("train")
    test, _ = data.load_sample("test")
    return train[:1024], test[:256]
