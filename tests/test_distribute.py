"""tf.distribute: 1 vs 2 replicas give the same training, multi-worker keeps replicas identical,
checkpoints resume under another replica count, and the --strategy flag.

Tests that need logical devices or several workers run scripts in subprocesses (pytest's process
has already initialised TensorFlow's devices) that write JSON; the assertions are made here.
"""
import copy
import dataclasses
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from lipvae_tf import distribute, train

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# float32 training: the runs differ only in summation order (per-replica sums added by the
# all-reduce), which moves losses of ~100 by a few ulps per step: measured at most 7.6e-6 absolute
# (Adam, 12 steps) and 1.2e-4 on ~240 (SGD). 1e-4 relative leaves room for other CPUs and still
# fails on per-replica noise draws (0.7 on ~110, Adam) or an unscaled per-replica loss (70 on
# ~240 with SGD; Adam hides that one: 2e-4 on ~110, hence the SGD test).
LOSS_RTOL = 1e-4
RADIUS_RTOL = 1e-5  # certificates use measured float64 norms of kernels that agree to ~3e-7


def _env() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    env.pop("TF_CONFIG", None)
    return env


def _script(name: str, *args, timeout: float = 240) -> None:
    done = subprocess.run([sys.executable, os.path.join(HERE, name), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=_env(), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]


def _close(a, b, rtol: float) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=0)
    return float(np.max(np.abs(a - b)))


def test_make_strategy_names_and_errors():
    assert distribute.make_strategy("default") is tf.distribute.get_strategy()
    mirrored = distribute.make_strategy("mirrored", devices=["/cpu:0"])
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="strategy must be one of"):
        distribute.make_strategy("tpu")
    with pytest.raises(ValueError, match="devices applies only"):
        distribute.make_strategy("default", devices=["/cpu:0"])
    assert distribute.is_chief(mirrored) and distribute.worker_path("out", mirrored) == "out"


@pytest.mark.parametrize("value, match", [
    ("not json", "TF_CONFIG is not valid JSON"), ("[1, 2]", "TF_CONFIG must be a JSON object"),
    ('{"cluster": {"worker": "a:1"}}', "TF_CONFIG's 'cluster' must map job names to lists"),
    ('{"cluster": {"worker": ["a:1"]}, "task": "worker"}',
     "TF_CONFIG's 'task' must be an object"),
])
def test_a_malformed_tf_config_is_named(monkeypatch, value, match):
    """A newcomer's run (2026-12-02): TF_CONFIG='not json' stopped the multi_worker command
    with a bare "Expecting value: line 1 column 1 (char 0)"."""
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match=match):
        distribute.make_strategy("multi_worker")
    distribute.check_tf_config("")
    distribute.check_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, '
                               '"task": {"type": "worker", "index": 0}}')


def test_compile_in_scope_refuses_a_model_built_outside_the_strategy():
    mirrored = distribute.make_strategy("mirrored", devices=["/cpu:0"])
    outside = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with mirrored.scope(), pytest.raises(ValueError, match="built outside"):
        distribute.compile_in_scope(outside, lambda: keras.optimizers.SGD())
    inside = distribute.build_in_scope(mirrored, lambda: keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2)]))
    distribute.compile_in_scope(inside, lambda: keras.optimizers.SGD(), loss="mse")
    assert inside.distribute_strategy is mirrored
    assert isinstance(inside.optimizer.variables[-1].value, tf.distribute.DistributedValues)


def test_one_replica_helpers_are_the_plain_operations():
    assert distribute.global_batch_size(5).numpy() == 5.0
    a = distribute.replica_normal((3, 2), "float32", keras.random.SeedGenerator(7))
    b = keras.random.normal((3, 2), dtype="float32", seed=keras.random.SeedGenerator(7))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert distribute.step_logs({"loss": tf.constant(1.0)})["loss"].shape == ()


def test_training_dataset_is_a_stateless_per_epoch_permutation():
    images = np.arange(10, dtype=np.float32)[:, None]
    dataset, steps = distribute.training_dataset(images, 4, seed=3)
    assert steps == 3
    batches = [b.numpy()[:, 0].astype(int).tolist() for b in dataset.take(6)]
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]  # the partial batch ends its epoch
    first, second = sum(batches[:3], []), sum(batches[3:], [])
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    again = [b.numpy()[:, 0].astype(int).tolist() for b in dataset.take(3)]
    assert sum(again, []) == first  # a new iterator (Keras makes one to build) starts at epoch 0
    policy = dataset.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA
    with pytest.raises(ValueError, match="global_batch_size"):
        distribute.training_dataset(images, 0)


@pytest.fixture(scope="module")
def two_cpus(tmp_path_factory) -> dict:
    """One subprocess with two logical CPUs: the same training on one device and on both
    (equivalence), and checkpoints resumed under the other replica count (resume)."""
    tmp = tmp_path_factory.mktemp("two_cpus")
    _script("distribute_check.py", "all", tmp / "result.json", tmp / "runs", timeout=300)
    return json.loads((tmp / "result.json").read_text())


@pytest.fixture
def equivalence(two_cpus) -> dict:
    return two_cpus["equivalence"]


def test_a_first_batch_that_does_not_split_across_replicas_is_refused_first(two_cpus):
    """An operator's review (2026-12-04): the CLI under --strategy=mirrored with 2 replicas and
    --batch_size=33 (or --test_limit=33) loaded the data, then died in Keras' symbolic build
    with a raw InvalidArgumentError (AddN, [17,28,28,1] != [16,28,28,1])."""
    split = two_cpus["split"]
    assert "first training batch holds 33 images" in split["batch_size"]
    assert "choose --batch_size so that it is a multiple of 2" in split["batch_size"]
    assert "first validation batch holds 33 images" in split["test_limit"]
    assert "--batch_size and --test_limit" in split["test_limit"]
    assert split["batch_size_written"] == split["test_limit_written"] == []  # nothing trained
    # the same check, as a function, for a single replica and for even splits
    config = train.TrainConfig(batch_size=33, test_limit=64)
    train.check_replica_split(config, 1, 256, 64)
    train.check_replica_split(dataclasses.replace(config, batch_size=64), 2, 256, 64)
    with pytest.raises(ValueError, match="--batch_size and --validation_images"):
        train.check_replica_split(dataclasses.replace(config, batch_size=64,
                                                      validation_images=33), 2, 256, 64)


def test_two_replicas_train_like_one_device(equivalence):
    result = equivalence
    one, two = result["one"], result["two"]
    assert one["replicas"] == 1 and two["replicas"] == 2
    assert one["iterations"] == two["iterations"] == 12  # 3 epochs x 256 / 64
    for key in ("loss", "elbo", "kl", "val_loss"):
        _close(one["history"][key], two["history"][key], LOSS_RTOL)
    _close(one["step_losses"], two["step_losses"], LOSS_RTOL)
    assert np.ptp(one["history"]["loss"]) > 1.0  # it trained: the curve is not flat
    # the replicas' copies of every variable are bit-identical (constraint applied per replica
    # after the summed update), the kernels satisfy it, and both runs reach the same kernels
    assert two["replica_spread"] == 0.0
    for run in (one, two):
        for path, sigma in run["sigma_max"].items():
            assert sigma <= run["targets"][path] * (1 + 1e-3), path
    assert result["kernel_difference"] < 1e-5
    _close(one["radius"], two["radius"], RADIUS_RTOL)
    assert min(two["radius"]) >= 1.0  # the design's radius


def test_sgd_curve_is_the_same_too(equivalence):
    """Adam hides a gradient scaled by the replica count (only eps is not scale-invariant);
    plain SGD does not: an unscaled per-replica mean moves this curve by tens."""
    sgd = equivalence["sgd"]
    assert len(sgd["one"]) == 2 and np.ptp(sgd["one"]) > 1.0
    _close(sgd["one"], sgd["two"], LOSS_RTOL)


def test_weighted_training_is_the_same_on_two_replicas(equivalence):
    """Per-image weights (Keras' sample_weight) enter the loss summed over the global batch and
    the metrics as Keras' weighted mean, so 2 replicas train and evaluate as 1 device."""
    weighted = equivalence["weighted"]
    assert np.ptp(weighted["one"]["loss"]) > 1.0
    _close(weighted["one"]["loss"], weighted["two"]["loss"], LOSS_RTOL)
    _close(weighted["one"]["kl"], weighted["two"]["kl"], LOSS_RTOL)


def test_checkpoints_resume_under_another_replica_count(two_cpus):
    result = two_cpus["resume"]
    assert result["two_to_one"]["replicas"] == [2, 1]
    assert result["one_to_two"]["replicas"] == [1, 2]
    for case in result.values():
        steps = case["steps_per_epoch"]
        assert case["saved_iterations"] == steps  # interrupted after the first epoch
        assert case["restored_iterations"] == steps  # the optimizer step continues ...
        assert case["restored_kernels_equal"]  # ... from the saved weights,
        assert case["epochs_after_resume"] == case["epochs"] - 1  # so does the epoch,
        assert case["final_iterations"] == case["epochs"] * steps  # and none is repeated


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# What a worker prints when another process took its port between _free_ports and the gRPC
# server's bind (the port-picker race of tensorflow/tensorflow#46602): the only failure retried
PORT_RACE = ("Address already in use", "Could not start gRPC server",
             "Failed to add any wildcard listeners")


def _two_workers(tmp_path, command, timeout: float = 180):
    """Runs `command(index)` as worker `index` of a two-worker TF_CONFIG cluster on 127.0.0.1,
    both at once, in a fresh folder of `tmp_path`; returns that folder. Retried with fresh
    ports only when a worker could not bind its port; any other failure prints both logs whole
    (pytest.fail: an assert's message is cut)."""
    for attempt in range(3):
        run_dir = tmp_path / f"attempt{attempt}"
        run_dir.mkdir()
        cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
        processes, logs = [], []
        try:
            for index in range(2):
                env = dict(_env(), TF_CONFIG=json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}))
                logs.append(open(run_dir / f"worker{index}.log", "w"))
                processes.append(subprocess.Popen(
                    [sys.executable, *map(str, command(run_dir, index))], env=env, cwd=ROOT,
                    stdout=logs[-1], stderr=subprocess.STDOUT))
            codes = [process.wait(timeout=timeout) for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=30)
            for log in logs:
                log.close()
        texts = [(run_dir / f"worker{index}.log").read_text() for index in range(2)]
        if codes == [0, 0]:
            return run_dir
        if not any(sign in text for text in texts for sign in PORT_RACE):
            break
    pytest.fail(f"exit codes {codes}\n" + "\n".join(
        f"--- worker{index}.log (last 6000 characters) ---\n{text[-6000:]}"
        for index, text in enumerate(texts)), pytrace=False)


def test_two_workers_end_with_identical_constrained_kernels(tmp_path):
    """Two MultiWorkerMirroredStrategy workers on 127.0.0.1, then the same training in one process
    without TF_CONFIG (the reference; three TensorFlow processes at once starve 2 cores)."""
    worker = os.path.join(HERE, "multiworker_worker.py")
    run_dir = _two_workers(tmp_path, lambda folder, index: [
        worker, folder / f"worker{index}", folder / "runs"])
    with open(run_dir / "single.log", "w") as log:
        assert subprocess.run([sys.executable, worker, run_dir / "single", run_dir / "single_runs"],
                              env=_env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              timeout=180).returncode == 0, (run_dir / "single.log").read_text()
    names = ["worker0", "worker1", "single"]
    for index, name in enumerate(names[:2]):  # each worker says who it is and that it waits
        assert (f"multi_worker: worker {index} of 2 tasks (TF_CONFIG); building the model waits "
                "until every task has started") in (run_dir / f"{name}.log").read_text()
    # one process without TF_CONFIG is not in multi-worker mode: nothing to wait for
    assert "multi_worker:" not in (run_dir / "single.log").read_text()
    results = [json.loads((run_dir / f"{name}.json").read_text()) for name in names[:2]]
    kernels = [np.load(run_dir / f"{name}.npz") for name in names[:2]]
    assert [r["replicas"] for r in results] == [2, 2]
    assert [r["chief"] for r in results] == [True, False]
    assert results[0]["iterations"] == results[1]["iterations"] == 8  # 2 epochs x 256 / 64
    assert results[0]["history"] == results[1]["history"]
    assert sorted(kernels[0].files) == sorted(kernels[1].files) and len(kernels[0].files) == 6
    assert len(results[0]["constrained"]) == 4  # the std network is left to its cap
    for name in kernels[0].files:
        assert np.array_equal(kernels[0][name], kernels[1][name]), name
    for result in results:
        for path, sigma in result["sigma_max"].items():
            assert sigma <= result["targets"][path] * (1 + 1e-3), path
    assert results[0]["radius"] == results[1]["radius"]
    assert min(results[0]["radius"]) >= results[0]["design_radius"] > 0
    # the non-chief wrote its checkpoints and logs apart from the chief's
    assert (run_dir / "runs" / "workers" / "worker_1" / "logs").is_dir()
    # DATA sharding gives each worker its half of every global batch: one process, one device,
    # same global batch, trains the same way
    single = json.loads((run_dir / "single.json").read_text())
    assert single["replicas"] == 1 and single["iterations"] == 8
    for key in ("loss", "val_loss"):
        _close(single["history"][key], results[0]["history"][key], LOSS_RTOL)
    _close(single["radius"], results[0]["radius"], RADIUS_RTOL)


def test_the_readmes_two_worker_command_trains_and_reports_on_each_worker(tmp_path):
    """README, "Scaling out": the same command once per worker, --output_dir not made yet. Both
    workers check that folder at the same moment (the probe race of the CI of 2026-12-04 was
    there too); the chief reports in it, worker 1 in workers/worker_1, with the same results."""
    def readme_command(folder, index):  # on tiny limits
        return ["-m", "lipvae_tf.train", "--strategy=multi_worker",
                f"--output_dir={folder / 'runs' / 'mw'}", "--source=sample", "--train_limit=256",
                "--test_limit=64", "--epochs=2", "--ll_samples=2", "--hidden_units=32",
                "--latent_dim=4"]

    output = _two_workers(tmp_path, readme_command, timeout=400) / "runs" / "mw"
    chief = json.loads((output / "report.json").read_text())
    other = json.loads((output / "workers" / "worker_1" / "report.json").read_text())
    for report in (chief, other):
        assert report["replicas"] == 2 and report["target_met"] is True
        assert set(report["models"]) == {"lipschitz_vae", "standard_vae"}
    for model in ("lipschitz_vae", "standard_vae"):
        assert (chief["models"][model]["certified_radius"]
                == other["models"][model]["certified_radius"])
        assert chief["models"][model]["history"] == other["models"][model]["history"]


def test_command_line_strategy_flag(tmp_path):
    from absl import flags

    from lipvae_tf import train

    parser = flags.FlagValues()  # the CLI's own --strategy flag, parsed apart from global FLAGS
    parser["strategy"] = copy.deepcopy(train.flags.FLAGS["strategy"])
    with pytest.raises(flags.IllegalFlagValueError, match="mirrored"):
        parser(["lipvae-train", "--strategy=tpu"])
    parser(["lipvae-train", "--strategy=multi_worker"])
    assert parser.strategy == "multi_worker" and train.TrainConfig().strategy == "default"
    command = [sys.executable, "-m", "lipvae_tf.train", "--source=sample", "--train_limit=128",
               "--test_limit=32", "--hidden_units=16", "--latent_dim=4", "--epochs=1",
               "--ll_samples=2", "--nobaseline", f"--output_dir={tmp_path}"]
    done = subprocess.run(command + ["--strategy=mirrored"], capture_output=True, text=True,
                          timeout=240, env=_env(), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["config"]["strategy"] == "mirrored"
    assert report["target_met"] is True
