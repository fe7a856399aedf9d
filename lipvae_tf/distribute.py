"""Training under `tf.distribute`: strategies, models built in their scope, sharded data, and the
per-replica arithmetic that makes a step independent of the number of replicas.

    strategy = make_strategy("mirrored")            # every local GPU, else every logical CPU
    model = build_in_scope(strategy, lambda: LipschitzVAE.from_target(1.0, 8.0))
    compile_in_scope(model, lambda: keras.optimizers.Adam(1e-3))
    data, steps = training_dataset(images, global_batch_size=256, seed=0)
    model.fit(data, steps_per_epoch=steps, epochs=10)

Data is fed the tf.data way: one pipeline batched at the *global* batch size with
`AutoShardPolicy.DATA`, which Keras hands to `strategy.experimental_distribute_dataset`. The
images live in memory (there are no files to shard, so FILE sharding cannot apply and AUTO would
fall back to DATA with a warning), every worker runs the same seeded pipeline, and TF splits each
global batch into contiguous per-replica slices in replica order (worker by worker). That order
is what `replica_normal` relies on to give each example the noise it gets on one device; with
`distribute_datasets_from_function` each replica would read its own sub-pipeline and a run would
no longer be the same computation as on one device.

Shuffling is stateless per epoch (permutation = f(seed, epoch)) in one endless stream read with
`steps_per_epoch`: Keras takes one batch from a fresh iterator to build the model symbolically
when a strategy is set, which would shift a `reshuffle_each_iteration` pipeline by one epoch
relative to a run without a strategy.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

import keras
import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike, DTypeLike

from lipvae_tf import checks

__all__ = [
    "STRATEGIES", "local_devices", "make_strategy", "build_in_scope", "compile_in_scope",
    "training_dataset", "evaluation_dataset", "replica_batch_sizes", "global_batch_size",
    "replica_normal", "in_multi_worker_mode", "worker_description", "step_logs", "is_chief",
    "worker_path", "check_tf_config",
]

STRATEGIES = ("default", "mirrored", "multi_worker")

_Model = TypeVar("_Model", bound=keras.Model)


def local_devices() -> list[str]:
    """The devices a `mirrored` strategy replicates over: every GPU, else every logical CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def make_strategy(name: str = "default", devices: Sequence[str] | None = None
                  ) -> tf.distribute.Strategy:
    """The strategy called `name` (one of STRATEGIES).

    default: TensorFlow's default strategy (one device, no replication).
    mirrored: `MirroredStrategy` over `devices` (default: `local_devices()`).
    multi_worker: `MultiWorkerMirroredStrategy`; reads the cluster from the TF_CONFIG environment
    variable and must be created before any other TensorFlow work in the process.
    """
    checks.one_of("strategy", name, STRATEGIES)
    if devices is not None and name != "mirrored":
        raise ValueError(f"devices applies only to strategy='mirrored', got strategy={name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = list(local_devices() if devices is None else devices)
        if not devices:
            raise ValueError("devices must name at least one device")
        return tf.distribute.MirroredStrategy(devices=devices)
    check_tf_config(os.environ.get("TF_CONFIG", ""))
    return tf.distribute.MultiWorkerMirroredStrategy()


def check_tf_config(text: str) -> None:
    """The TF_CONFIG environment variable's value, checked before TF parses it (a malformed one
    gave a bare "Expecting value: line 1 column 1 (char 0)" naming no variable): empty (a single
    local worker), or a JSON object whose "cluster" is an object of job lists and whose "task"
    is an object ("type" and "index"; TF's resolver tolerates either missing)
    (https://www.tensorflow.org/guide/distributed_training).

    Raises:
        ValueError: naming TF_CONFIG, its value (shortened) and what is wrong.
    """
    if not text.strip():
        return
    shown = text if len(text) <= 80 else text[:77] + "..."
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {shown!r}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object with 'cluster' and 'task', got "
                         f"{type(config).__name__}: {shown!r}")
    cluster, task = config.get("cluster"), config.get("task")
    if cluster is not None and not (isinstance(cluster, dict) and all(
            isinstance(hosts, (list, dict)) for hosts in cluster.values())):
        raise ValueError(f"TF_CONFIG's 'cluster' must map job names to lists of 'host:port', "
                         f"got {shown!r}")
    if task is not None and not isinstance(task, dict):
        raise ValueError(f"TF_CONFIG's 'task' must be an object (with 'type' and 'index'), got "
                         f"{shown!r}")


def build_in_scope(strategy: tf.distribute.Strategy, build: Callable[[], _Model]) -> _Model:
    """`build()` inside `strategy.scope()`: the model's variables are mirrored over its replicas
    (the model remembers the strategy and `fit` distributes over it)."""
    with strategy.scope():
        return build()


def compile_in_scope(model: keras.Model, make_optimizer: Callable[[], keras.optimizers.Optimizer],
                     **compile_kwargs) -> keras.Model:
    """Compiles `model` with `make_optimizer()` inside the scope the model was built in, and builds
    the optimizer there, so its slots are mirrored like the weights (BackupAndRestore would
    otherwise build them outside the scope before restoring)."""
    if tf.distribute.has_strategy() and model.variables and not isinstance(
            model.variables[0].value, tf.distribute.DistributedValues):
        raise ValueError(
            "model was built outside the tf.distribute strategy now in scope: build it inside "
            "that strategy's scope (see build_in_scope) before compiling"
        )
    with model.distribute_strategy.scope():
        model.compile(optimizer=make_optimizer(), **compile_kwargs)
        model.optimizer.build(model.trainable_variables)
    return model


def _check_images(images, global_batch_size: int) -> np.ndarray:
    array = checks.as_array("images", images)
    if array.ndim < 1 or len(array) == 0:
        raise ValueError(f"images must be a non-empty array of examples, got shape {array.shape}")
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, (int, np.integer)) \
            or global_batch_size < 1:
        raise ValueError(f"global_batch_size must be a positive integer, got {global_batch_size!r}")
    return array


def _shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def training_dataset(images: ArrayLike, global_batch_size: int, *, seed: int = 0,
                     shuffle: bool = True, start_epoch: int = 0,
                     start_batch: int = 0) -> tuple[tf.data.Dataset, int]:
    """An endless stream of global batches of `images`, and the steps that make one epoch.

    Epoch e is the permutation stateless_shuffle(seed, e) cut into ceil(n / global_batch_size)
    batches (the last one may be partial; it never mixes two epochs). Pass the step count as
    `steps_per_epoch` to `fit`. Sharded with AutoShardPolicy.DATA (see the module docstring).

    The stream starts at batch `start_batch` of epoch `start_epoch`: a run resumed from a
    checkpoint reads exactly the batches the uninterrupted run would have read from there on
    (the epoch number is part of the stream's definition, not of an iterator's state).
    """
    array = _check_images(images, global_batch_size)
    shuffle = checks.flag("shuffle", shuffle)
    count, batch = len(array), int(global_batch_size)
    steps = -(-count // batch)
    for name, value, limit in (("start_epoch", start_epoch, None),
                               ("start_batch", start_batch, steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0 or (
                limit is not None and value >= limit):
            bound = "" if limit is None else f" and < steps per epoch ({limit})"
            raise ValueError(f"{name} must be an integer >= 0{bound}, got {value!r}")

    def epoch_indices(epoch):
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            key = tf.stack([tf.constant(seed, tf.int64), epoch])
            order = tf.random.experimental.stateless_shuffle(order, seed=key)
        return tf.data.Dataset.from_tensor_slices(order).batch(batch)

    indices = tf.data.Dataset.counter(start=int(start_epoch)).flat_map(epoch_indices)
    if start_batch:
        indices = indices.skip(int(start_batch))
    # the array travels as one dataset element (as Keras does for NumPy input), not as a capture
    dataset = tf.data.Dataset.zip(indices, tf.data.Dataset.from_tensors(array).repeat())
    dataset = dataset.map(lambda index, data: tf.gather(data, index))
    return _shard_by_data(dataset.prefetch(tf.data.AUTOTUNE)), steps


def evaluation_dataset(images: ArrayLike, global_batch_size: int) -> tf.data.Dataset:
    """One ordered pass over `images` in global batches, sharded with AutoShardPolicy.DATA."""
    array = _check_images(images, global_batch_size)
    dataset = tf.data.Dataset.from_tensor_slices(array).batch(int(global_batch_size))
    return _shard_by_data(dataset.prefetch(tf.data.AUTOTUNE))


def replica_batch_sizes(batch_size: int | tf.Tensor) -> tf.Tensor:
    """The batch size of every replica in sync, in replica order (float32, shape (replicas,)).

    Inside `strategy.run` this is an all-reduce; in a cross-replica or default context it is
    just [batch_size].
    """
    size = tf.reshape(tf.cast(batch_size, tf.float32), [1])
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return size
    mine = tf.one_hot(context.replica_id_in_sync_group, context.num_replicas_in_sync) * size
    return context.all_reduce(tf.distribute.ReduceOp.SUM, mine)


def global_batch_size(batch_size: int | tf.Tensor) -> tf.Tensor:
    """The number of examples all replicas in sync hold together (float32 scalar)."""
    return tf.reduce_sum(replica_batch_sizes(batch_size))


def replica_normal(shape: Sequence[int] | tf.Tensor, dtype: DTypeLike | tf.DType,
                   seed: tf.Tensor) -> tf.Tensor:
    """Standard normal noise of `shape` whose rows (axis 0: examples) are this replica's rows of
    one draw for the whole global batch.

    Every replica draws the same global sample (their seed generators advance in lockstep) and
    keeps its slice, so each example gets the noise it would get on one device with the same
    global batch. Outside a multi-replica context it is `keras.random.normal(shape, ...)`.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return keras.random.normal(shape, dtype=dtype, seed=seed)
    shape = tf.convert_to_tensor(shape, tf.int32)
    sizes = tf.cast(replica_batch_sizes(shape[0]), tf.int32)
    offset = tf.reduce_sum(sizes[:context.replica_id_in_sync_group])
    whole = keras.random.normal(tf.concat([[tf.reduce_sum(sizes)], shape[1:]], 0), dtype=dtype,
                                seed=seed)
    return whole[offset:offset + shape[0]]


def in_multi_worker_mode(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether `strategy` (default: the current one) is a MultiWorkerMirroredStrategy whose
    cluster has more than one task."""
    strategy = tf.distribute.get_strategy() if strategy is None else strategy
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return _training_tasks(strategy) > 1


def _training_tasks(strategy: tf.distribute.MultiWorkerMirroredStrategy) -> int:
    """The chief and worker tasks of a multi-worker strategy's cluster."""
    spec = strategy.cluster_resolver.cluster_spec()
    return sum(spec.num_tasks(job) for job in spec.jobs if job in ("chief", "worker"))


def worker_description(strategy: tf.distribute.Strategy) -> str | None:
    """One line saying which worker of a multi-worker `strategy` this process is, and that it
    waits for the others (a worker whose peer never starts waited silently), or None outside
    multi-worker mode."""
    if not in_multi_worker_mode(strategy):
        return None
    resolver = strategy.cluster_resolver
    return (f"multi_worker: {resolver.task_type} {resolver.task_id} of "
            f"{_training_tasks(strategy)} tasks "
            f"(TF_CONFIG); building the model waits until every task has started")


def step_logs(logs: dict) -> dict:
    """What a custom `train_step`/`test_step` returns: `logs` unchanged, except that scalars
    become shape (1,) in multi-worker mode.

    Keras 3 (keras/src/backend/tensorflow/trainer.py, `reduce_per_replica`) reduces step outputs
    there with `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars ("Invalid
    reduction dimension 0 for input with 0 dimensions"; tensorflow/tensorflow#72388); on (1,)
    values it gives the scalar mean over the replicas.
    """
    if not in_multi_worker_mode():
        return logs
    return {name: tf.reshape(value, [-1]) if value.shape.rank == 0 else value
            for name, value in logs.items()}


def _task(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs: the chief task, else worker 0 (or any
    single-process strategy)."""
    task_type, task_id = _task(strategy)
    if task_type is None:
        return True
    jobs = strategy.cluster_resolver.cluster_spec().jobs
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in jobs)


def worker_path(path: str, strategy: tf.distribute.Strategy) -> str:
    """`path` for the chief; `path/workers/<task>_<id>` for other workers, so that processes of one
    multi-worker run never write (checkpoints, reports, models) to the same files."""
    if is_chief(strategy):
        return path
    task_type, task_id = _task(strategy)
    return os.path.join(path, "workers", f"{task_type}_{task_id}")
