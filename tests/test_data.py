"""lipvae_tf.data: IDX parsing, the bundled sample, source resolution (TFDS, IDX, sample),
options."""
import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from lipvae_tf import data

_IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
              np.float64: 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of `array`, written independently of the reader under test."""
    code = _IDX_CODES[array.dtype.type]
    header = (struct.pack(">BBBB", 0, 0, code, array.ndim)
              + struct.pack(f">{array.ndim}I", *array.shape))
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    content = idx_bytes(array)
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


def fake_split(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # the extremes map to exactly 0 and 1
    return images, rng.integers(0, 10, size=n, dtype=np.uint8)


def write_idx_dir(directory: Path, gz: bool = True, n_train: int = 12, n_test: int = 7) -> dict:
    """IDX files of both splits in `directory`; returns {split: (images, labels)}."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    written = {}
    for seed, (split, prefix, n) in enumerate((("train", "train", n_train),
                                               ("test", "t10k", n_test))):
        images, labels = fake_split(seed, n)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
        written[split] = (images, labels)
    return written


def as_numpy(ds: tf.data.Dataset) -> list:
    return [tf.nest.map_structure(lambda t: t.numpy(), element) for element in ds]


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    """Make the Debian Fashion-MNIST directory missing."""
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian-here")


@pytest.fixture
def empty_tfds_dir(tmp_path) -> str:
    path = tmp_path / "tfds"
    path.mkdir()
    return str(path)


# ---------------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32])
def test_read_idx_round_trip(tmp_path, gz, dtype):
    array = (np.arange(2 * 3 * 5) * 37 - 100).astype(dtype).reshape(2, 3, 5)
    read = data.read_idx(write_idx(tmp_path / "a.idx", array, gz))
    assert read.shape == (2, 3, 5) and read.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(read, array)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_load_idx_and_idx_source_round_trip(tmp_path, no_debian, gz):
    written = write_idx_dir(tmp_path / "idx", gz=gz)
    images, labels = data.load_idx(tmp_path / "idx", "test")
    np.testing.assert_array_equal(images, written["test"][0])
    np.testing.assert_array_equal(labels, written["test"][1])
    ds = data.load_dataset("mnist", "train", source="idx", idx_dir=tmp_path / "idx",
                           with_labels=True)
    got = as_numpy(ds)
    assert len(got) == 12
    x, y = got[0]
    assert x.dtype == np.float32 and x.shape == (28, 28, 1) and y.dtype == np.int64
    np.testing.assert_allclose(np.stack([g[0] for g in got])[..., 0], written["train"][0] / 255.0,
                               rtol=1e-6)
    np.testing.assert_array_equal([g[1] for g in got], written["train"][1])


def test_plain_file_preferred_over_gz(tmp_path):
    write_idx_dir(tmp_path, gz=True)
    plain = write_idx_dir(tmp_path, gz=False, n_test=3)  # different count: tells them apart
    assert len(data.load_idx(tmp_path, "test")[0]) == len(plain["test"][0]) == 3


def test_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "bad-magic"
    content = bytearray(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    content[0] = 7
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"bad-magic.*magic"):
        data.read_idx(path)
    content[0], content[2] = 0, 0x42  # unknown type code
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"bad-magic.*magic"):
        data.read_idx(path)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_truncated_file_names_the_file_and_expected_size(tmp_path, gz):
    content = idx_bytes(np.ones((3, 28, 28), np.uint8))
    path = tmp_path / "short.idx"
    path.write_bytes(content[:-10])
    with pytest.raises(ValueError, match=r"short\.idx.*needs 2352 bytes.*found 2342.*truncated"):
        data.read_idx(path)
    path.write_bytes(content[:6])  # cut inside the dimensions
    with pytest.raises(ValueError, match=r"short\.idx.*truncated IDX header"):
        data.read_idx(path)
    if gz:  # a cut gzip stream
        path.write_bytes(gzip.compress(content)[:-20])
        with pytest.raises(ValueError, match=r"short\.idx.*gzip"):
            data.read_idx(path)


def test_damaged_headers_and_streams_name_the_file(tmp_path):
    """A review: a corrupted deflate block raised zlib.error, dimensions whose product wraps
    in int64 (65536^4) or 255 dimensions got NumPy's reshape errors, an empty split
    "need at least one array to concatenate"; none named the file."""
    path = tmp_path / "damaged.idx"
    stream = bytearray(gzip.compress(idx_bytes(np.ones((3, 28, 28), np.uint8))))
    stream[10] ^= 0xFF
    path.write_bytes(bytes(stream))
    with pytest.raises(ValueError, match=r"damaged\.idx: damaged gzip data"):
        data.read_idx(path)
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 4) + struct.pack(">4I", *(65536,) * 4))
    with pytest.raises(ValueError, match=r"damaged\.idx: IDX data of shape \(65536, 65536, "
                                         r"65536, 65536\) needs 18446744073709551616 bytes"):
        data.read_idx(path)
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 255) + bytes(4 * 255))
    with pytest.raises(ValueError, match=r"damaged\.idx: an IDX file of 255 dimensions"):
        data.read_idx(path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8), gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(0, np.uint8), gz=False)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: holds no images"):
        data.load_idx(tmp_path, "test")


def test_an_idx_folder_of_the_wrong_kind_is_named(tmp_path):
    """An operator's review (2026-12-04): load_idx(None, ...) said only "expected str, bytes or
    os.PathLike object", and a folder where the images file belongs was "not found" (naming
    the .gz)."""
    with pytest.raises(TypeError, match="directory must be the folder of the IDX files"):
        data.load_idx(None, "test")
    (tmp_path / "t10k-images-idx3-ubyte").mkdir()
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8), gz=False)
    for load in (lambda: data.load_idx(tmp_path, "test"),
                 lambda: data.load_arrays("fashion_mnist", "test", source="idx",
                                          idx_dir=tmp_path)):
        with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte is a folder"):
            load()


def test_trailing_bytes_are_refused(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(np.ones((2, 28, 28), np.uint8)) + b"\0")
    with pytest.raises(ValueError, match=r"long\.idx.*trailing"):
        data.read_idx(path)


def test_count_mismatch_names_the_labels_file(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8), gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8), gz=True)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: has 4 labels, expected 5"):
        data.load_idx(tmp_path, "test")


def test_wrong_image_shape_and_label_values_are_refused(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 27, 28), np.uint8), gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8), gz=False)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: expected uint8 images "
                                         r"of shape \(N, 28, 28\)"):
        data.load_idx(tmp_path, "test")
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8), gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([3, 10], np.uint8), gz=False)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: labels must be in 0\.\.9"):
        data.load_idx(tmp_path, "test")


# ---------------------------------------------------------------------------------------------
# Bundled sample
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split, n", [("train", 3000), ("test", 1000)])
def test_sample_shapes_range_and_labels(split, n):
    images, labels = data.load_sample(split)
    assert images.shape == (n, 28, 28, 1) and images.dtype == np.float32
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_array_equal(np.bincount(labels), [n // 10] * 10)  # class-balanced 0..9
    # Real photographs of clothes, not noise or blanks: mostly dark background, varied content.
    assert 0.2 < images.mean() < 0.45 and images.std() > 0.25
    assert len(np.unique(images.reshape(n, -1), axis=0)) == n


def test_sample_matches_the_debian_files_when_installed():
    if not data.DEBIAN_FASHION_MNIST_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist not installed")
    with np.load(data.SAMPLE_PATH) as archive:
        index, x_test, y_test = archive["test_index"], archive["x_test"], archive["y_test"]
    images, labels = data.load_idx(data.DEBIAN_FASHION_MNIST_DIR, "test")
    np.testing.assert_array_equal(x_test, images[index])
    np.testing.assert_array_equal(y_test, labels[index])


def test_sample_checksum_detects_tampering(tmp_path, monkeypatch):
    copy = tmp_path / "sample.npz"
    shutil.copyfile(data.SAMPLE_PATH, copy)
    monkeypatch.setattr(data, "SAMPLE_PATH", copy)
    assert data.load_sample("test")[0].shape == (1000, 28, 28, 1)  # the untouched copy is accepted
    content = bytearray(copy.read_bytes())
    content[len(content) // 2] ^= 0x01
    copy.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"sample\.npz: sha256 .* does not match"):
        data.load_sample("test")
    with pytest.raises(ValueError, match=r"sample\.npz: sha256"):
        data.load_dataset("fashion_mnist", "test", source="sample")
    copy.unlink()
    with pytest.raises(FileNotFoundError, match=r"sample\.npz"):
        data.load_sample("train")


# ---------------------------------------------------------------------------------------------
# Source resolution
# ---------------------------------------------------------------------------------------------


def test_auto_falls_back_to_the_sample(no_debian, empty_tfds_dir):
    assert data.resolve_source("fashion_mnist", "test", data_dir=empty_tfds_dir) == "sample"
    ds = data.load_dataset("fashion_mnist", "test", data_dir=empty_tfds_dir, batch_size=1000)
    (batch,) = as_numpy(ds)
    np.testing.assert_array_equal(batch, data.load_sample("test")[0])


def test_load_arrays_reports_the_source_it_read_resolving_it_once(monkeypatch, no_debian,
                                                                  empty_tfds_dir):
    """"auto" probes TFDS; load_arrays resolved it twice (once for the report, once for the
    read), so a probe that answered differently the second time reported a source it did not
    read."""
    answers = iter(["sample", "idx:/nowhere"])  # a second probe would name another source
    monkeypatch.setattr(data, "resolve_source", lambda *args, **kwargs: next(answers))
    images, labels, source = data.load_arrays("fashion_mnist", "test", data_dir=empty_tfds_dir)
    assert source == "sample"
    np.testing.assert_array_equal(images, data.load_sample("test")[0])
    np.testing.assert_array_equal(labels, data.load_sample("test")[1])


def test_auto_uses_the_debian_directory_when_present(monkeypatch, tmp_path, empty_tfds_dir):
    written = write_idx_dir(tmp_path / "debian")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "debian")
    assert (data.resolve_source("fashion_mnist", "train", data_dir=empty_tfds_dir)
            == f"idx:{tmp_path / 'debian'}")
    (batch,) = as_numpy(data.load_dataset("fashion_mnist", "train", data_dir=empty_tfds_dir,
                                          batch_size=64))
    np.testing.assert_allclose(batch[..., 0], written["train"][0] / 255.0, rtol=1e-6)
    # MNIST never reads the Fashion-MNIST files.
    with pytest.raises(FileNotFoundError, match=r"'mnist'"):
        data.resolve_source("mnist", "train", data_dir=empty_tfds_dir)
    # A forced sample ignores them.
    assert data.resolve_source("fashion_mnist", "train", source="sample") == "sample"


def test_idx_dir_takes_precedence_over_debian(monkeypatch, tmp_path, empty_tfds_dir):
    write_idx_dir(tmp_path / "debian")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "debian")
    mine = write_idx_dir(tmp_path / "mine", gz=False, n_test=4)
    got = data.resolve_source("fashion_mnist", "test", data_dir=empty_tfds_dir,
                              idx_dir=tmp_path / "mine")
    assert got == f"idx:{tmp_path / 'mine'}"
    ds = data.load_dataset("fashion_mnist", "test", data_dir=empty_tfds_dir,
                           idx_dir=tmp_path / "mine")
    assert len(as_numpy(ds)) == len(mine["test"][0]) == 4


def test_auto_never_skips_a_folder_the_user_named(monkeypatch, tmp_path, empty_tfds_dir):
    """A newcomer's typo in --idx_dir trained on the 3000-image sample without a word (with the
    Debian files installed, a worse choice than giving no folder at all)."""
    write_idx_dir(tmp_path / "debian")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "debian")
    for name in ("fashion_mnist", "mnist"):
        with pytest.raises(FileNotFoundError, match=r"typo/t10k-images-idx3-ubyte\.gz"):
            data.resolve_source(name, "test", data_dir=empty_tfds_dir, idx_dir=tmp_path / "typo")
    with pytest.raises(FileNotFoundError, match=r"typo/t10k-images"):
        data.load_arrays("fashion_mnist", "test", data_dir=empty_tfds_dir,
                         idx_dir=tmp_path / "typo")
    with pytest.raises(FileNotFoundError, match=r"data_dir '.*nowhere' is not a folder"):
        data.resolve_source("fashion_mnist", "test", data_dir=str(tmp_path / "nowhere"))
    # the folders that are there still resolve as before
    assert (data.resolve_source("fashion_mnist", "test", data_dir=empty_tfds_dir)
            == f"idx:{tmp_path / 'debian'}")


def test_unavailable_forced_sources(tmp_path, no_debian):
    with pytest.raises(FileNotFoundError, match=r"no-debian-here/train-images-idx3-ubyte\.gz"):
        data.resolve_source("fashion_mnist", "train", source="idx")
    with pytest.raises(FileNotFoundError, match=r"idx_dir"):
        data.load_dataset("mnist", "train", source="idx")
    (tmp_path / "half").mkdir()
    write_idx(tmp_path / "half" / "train-images-idx3-ubyte", np.zeros((1, 28, 28), np.uint8),
              gz=False)
    with pytest.raises(FileNotFoundError, match=r"half/train-labels-idx1-ubyte\.gz"):
        data.load_dataset("mnist", "train", source="idx", idx_dir=tmp_path / "half")
    with pytest.raises(ValueError, match=r"source='sample'.*fashion_mnist.*'mnist'"):
        data.load_dataset("mnist", "test", source="sample")


# ---------------------------------------------------------------------------------------------
# TFDS
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared_tfds(tmp_path_factory):
    """A real TFDS data_dir with small fashion_mnist and mnist datasets prepared offline.

    TFDS' own MNIST builders run unchanged, except that `download_and_extract` returns IDX files
    written here instead of fetching the originals, and the split sizes match those files. The
    result is ordinary TFRecord data that TFDS later reads with no mocking at all.
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import mnist as tfds_mnist

    root = tmp_path_factory.mktemp("tfds_prepared")
    written = write_idx_dir(root / "idx", gz=False, n_train=9, n_test=5)
    prefix = root / "idx"
    files = {
        "train_data": prefix / "train-images-idx3-ubyte",
        "train_labels": prefix / "train-labels-idx1-ubyte",
        "test_data": prefix / "t10k-images-idx3-ubyte",
        "test_labels": prefix / "t10k-labels-idx1-ubyte",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tfds_mnist, "_TRAIN_EXAMPLES", 9)
        patch.setattr(tfds_mnist, "_TEST_EXAMPLES", 5)
        patch.setattr(tfds.download.DownloadManager, "download_and_extract",
                      lambda self, urls: {k: str(v) for k, v in files.items()})
        for name in data.NAMES:
            tfds.builder(name, data_dir=str(root / "tfds")).download_and_prepare()
    return str(root / "tfds"), written


def _sorted_rows(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1)
    return flat[np.lexsort(flat.T[::-1])]


@pytest.mark.parametrize("name", data.NAMES)
def test_prepared_tfds_is_taken_first(prepared_tfds, monkeypatch, tmp_path, name):
    data_dir, written = prepared_tfds
    write_idx_dir(tmp_path / "debian")  # IDX files present too: TFDS must still win
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "debian")
    assert data.resolve_source(name, "test", data_dir=data_dir,
                               idx_dir=tmp_path / "debian") == "tfds"
    got = as_numpy(data.load_dataset(name, "test", data_dir=data_dir, with_labels=True))
    images = np.stack([g[0] for g in got])
    assert images.dtype == np.float32 and images.shape == (5, 28, 28, 1)
    assert images.min() == 0.0 and images.max() == 1.0
    # TFDS stores the examples in its own order; compare as sets of (image, label).
    want_images, want_labels = written["test"]
    np.testing.assert_allclose(_sorted_rows(images[..., 0]), _sorted_rows(want_images / 255.0),
                               rtol=1e-6)
    assert sorted(int(g[1]) for g in got) == sorted(want_labels.tolist())
    assert len(as_numpy(data.load_dataset(name, "train", source="tfds", data_dir=data_dir,
                                          limit=4))) == 4


def test_auto_never_downloads_but_forced_tfds_does(monkeypatch, no_debian, empty_tfds_dir):
    import tensorflow_datasets as tfds

    class Downloaded(Exception):
        pass

    def refuse(self, *args, **kwargs):
        raise Downloaded(self.name)

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", refuse)
    assert data.resolve_source("fashion_mnist", "train", data_dir=empty_tfds_dir) == "sample"
    with pytest.raises(FileNotFoundError, match=r"'mnist'.*source='tfds'"):
        data.load_dataset("mnist", "train", data_dir=empty_tfds_dir)
    with pytest.raises(Downloaded, match="mnist"):
        data.load_dataset("mnist", "train", source="tfds", data_dir=empty_tfds_dir)

    def offline(self, *args, **kwargs):  # what requests raises here after minutes of retries
        raise ConnectionError("Failed to establish a new connection")

    # a newcomer's run: a raw ConnectionError traceback; now the error the CLI prints as a line
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(FileNotFoundError, match=r"mnist is not prepared in TFDS and downloading "
                                                r"it failed .*source 'idx'"):
        data.load_dataset("mnist", "train", source="tfds", data_dir=empty_tfds_dir)


def test_tfds_probe_failure_falls_back(monkeypatch, no_debian, empty_tfds_dir):
    def broken(name, data_dir):
        raise ImportError("no tensorflow_datasets")

    monkeypatch.setattr(data, "_tfds_builder", broken)
    assert data.resolve_source("fashion_mnist", "test", data_dir=empty_tfds_dir) == "sample"
    with pytest.raises(ImportError):
        data.load_dataset("fashion_mnist", "test", source="tfds")


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


def test_limit_and_batches():
    first = data.load_sample("train")[0][:10]
    ds = data.load_dataset("fashion_mnist", "train", source="sample", limit=10, batch_size=4)
    batches = as_numpy(ds)
    assert [len(b) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(batches), first)
    labelled = as_numpy(data.load_dataset("fashion_mnist", "train", source="sample", limit=3,
                                          with_labels=True))
    assert [int(y) for _, y in labelled] == data.load_sample("train")[1][:3].tolist()


def test_shuffle_is_deterministic_per_seed():
    def order(seed, epochs=1):
        ds = data.load_dataset("fashion_mnist", "test", source="sample", limit=50, shuffle=True,
                               seed=seed, with_labels=True, batch_size=50)
        # Identify each example by its pixel sum (distinct for these 50 images).
        return [np.round(x.sum(axis=(1, 2, 3)), 3).tolist() for x, _ in as_numpy(ds.repeat(epochs))]

    plain = [np.round(x.sum(axis=(1, 2, 3)), 3).tolist()
             for x in as_numpy(data.load_dataset("fashion_mnist", "test", source="sample",
                                                 limit=50, batch_size=50))]
    assert len(set(plain[0])) == 50
    epoch1, epoch2 = order(seed=3, epochs=2)
    assert order(seed=3) == [epoch1]
    # a permutation of the first 50
    assert sorted(epoch1) == sorted(plain[0]) and epoch1 != plain[0]
    assert order(seed=4)[0] != epoch1
    assert epoch2 != epoch1 and sorted(epoch2) == sorted(epoch1)  # reshuffled every epoch


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(name="cifar10"), ValueError,
         r"name must be one of \('fashion_mnist', 'mnist'\), got 'cifar10'"),
        (dict(split="validation"), ValueError, r"split must be one of \('train', 'test'\)"),
        (dict(source="web"), ValueError,
         r"source must be one of \('auto', 'tfds', 'idx', 'sample'\)"),
        (dict(limit=0), ValueError, r"limit must be an integer >= 1, got 0"),
        (dict(limit=-5), ValueError, r"limit must be an integer >= 1"),
        (dict(limit=2.5), TypeError, r"limit must be an integer"),
        (dict(batch_size=0), ValueError, r"batch_size must be an integer >= 1, got 0"),
        (dict(seed=-1), ValueError, r"seed must be an integer >= 0"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, message):
    arguments = dict(name="fashion_mnist", split="train", source="sample") | kwargs
    with pytest.raises(error, match=message):
        data.load_dataset(arguments.pop("name"), arguments.pop("split"), **arguments)


def test_load_arrays_gives_the_whole_split_with_labels_and_its_source():
    images, labels, source = data.load_arrays("fashion_mnist", "test", source="sample", limit=300)
    expected_images, expected_labels = data.load_sample("test")
    assert source == "sample"
    np.testing.assert_array_equal(images, expected_images[:300])
    np.testing.assert_array_equal(labels, expected_labels[:300])
