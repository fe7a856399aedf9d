"""Reference measurements of linear operators, independent of lipvae_tf's own norm code."""
import keras
import numpy as np
import tensorflow as tf


def dense_matrix(op, input_shape) -> np.ndarray:
    """The operator as a matrix (rows = outputs), by applying it to every basis image."""
    size = int(np.prod(input_shape))
    basis = tf.reshape(tf.eye(size, dtype=tf.float64), (size, *input_shape))
    outputs = op(basis)
    return tf.reshape(outputs, (size, -1)).numpy().T


def exact_norm(op, input_shape) -> float:
    return float(np.linalg.norm(dense_matrix(op, input_shape), 2))


def power_iteration_norm(op, input_shape, iterations: int = 3000, seed: int = 0) -> float:
    """sigma_max by power iteration on A^T A, the transpose taken by autodiff of `op` itself.

    Converges from below: every iterate's ||A x|| / ||x|| is a lower bound of the true norm.
    """
    x = tf.random.stateless_normal((1, *input_shape), seed=(seed, 1), dtype=tf.float64)

    @tf.function
    def run(x):
        for _ in tf.range(iterations):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = op(x)
            x = tape.gradient(y, x, output_gradients=y)
            x = x / tf.norm(x)
        return tf.norm(op(x))

    return float(run(x))


def max_ratio_by_attack(model, shape, steps: int = 200, count: int = 256, start=None, spread=0.05):
    """Gradient ascent on ||f(x) - f(x')|| / ||x - x'|| from `count` random pairs.

    Returns (largest ratio at the start, largest ratio after the ascent). `start` optionally
    gives the first points (e.g. real images); otherwise they are standard normal.
    """
    first = tf.random.normal((count, *shape)) if start is None else tf.constant(start)
    x = tf.Variable(first)
    x2 = tf.Variable(first + spread * tf.random.normal(first.shape))
    optimizer = keras.optimizers.Adam(1e-2)

    def ratio():
        diff_out = tf.norm(tf.reshape(model(x) - model(x2), (count, -1)), axis=1)
        diff_in = tf.norm(tf.reshape(x - x2, (count, -1)), axis=1) + 1e-12
        return diff_out / diff_in

    @tf.function
    def ascend():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_sum(ratio())
        optimizer.apply_gradients(zip(tape.gradient(loss, [x, x2]), [x, x2]))

    initial = float(tf.reduce_max(ratio()))
    for _ in range(steps):
        ascend()
    return initial, float(tf.reduce_max(ratio()))
