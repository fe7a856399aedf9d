"""Packaging for lipvae_tf: certifiably robust (Lipschitz) VAEs in Keras 3 / TensorFlow."""
from setuptools import find_packages, setup

setup(
    name="lipvae_tf",
    version="0.2.0",
    description="Keras 3 / TensorFlow variational autoencoders with certified robustness.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["lipvae_tf", "lipvae_tf.*"]),
    # The bundled Fashion-MNIST sample (lipvae_tf.data's last-resort source).
    package_data={"lipvae_tf": ["sample_data/*.npz"]},
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "tensorflow-probability[tf]",
        "tensorflow-datasets",
        "absl-py",
        # the training report's figures (certified-radius histogram, reconstructions).
        "matplotlib",
        # TensorBoard logs of training runs (TensorFlow no longer installs it).
        "tensorboard",
        # tensorflow-datasets imports it at run time but does not declare it.
        "importlib_resources",
    ],
    entry_points={"console_scripts": ["lipvae-train = lipvae_tf.train:cli"]},
    extras_require={
        "test": ["pytest>=7", "scipy", "ruff"],
        "bench": ["numpy"],
        "notebooks": ["nbclient", "nbformat", "ipykernel"],
    },
)
