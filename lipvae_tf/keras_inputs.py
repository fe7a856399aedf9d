"""What Keras' `fit`, `evaluate` and `predict` are given, checked before Keras traces or
iterates it: the `KerasInputs` mixin of `LipschitzVAE`, and the per-batch unpacking of its
train and test steps.

Keras accepts arrays, tensors, `tf.data` datasets, Python generators and `keras.utils.PyDataset`
as x, with labels and per-example weights in several forms, and drops or misreads some of them
for a model without targets (an autoencoder): (x, None, sample_weight) loses the weights, a
generator's bare batches break its adapter, class_weight needs labels. This module turns each
of those into a typed error naming the argument, or into the form Keras needs, so that nothing
is silently lost. The pixel values of arrays and tensors are checked here too; those of datasets,
generators and `PyDataset`s in the graph (`LipschitzVAE.checked_pixels`).
"""
from __future__ import annotations

import contextlib
import inspect
import itertools
import re
import types
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lipvae_tf import checks

__all__ = ["KerasInputs", "check_image_layout", "images_and_weights", "nested_list_as_array"]


class KerasInputs:
    """Keras' `fit`, `evaluate`, `predict` and their `*_on_batch` forms with their inputs
    checked first; a mixin placed
    before `keras.Model` in the bases of a model with an `image_shape` (height, width,
    channels) and one input, the images."""

    def fit(self, x=None, y=None, *args, **kwargs):
        """Keras' `fit`, with the inputs checked first (`check_keras_inputs`: x and
        validation_data, a generator's first batch) and `sample_weight` kept when no y is
        given: Keras drops the weights of an (x, None, weights) call, so x stands in for y (an
        autoencoder's target). A generator may yield bare image batches. The other arguments go
        to Keras' `fit` as given (positional ones by their names in Keras' signature).

        Raises:
            TypeError / ValueError: naming x, validation_data or sample_weight, for a dict, a
                shape other than (batch, *image_shape), integer pixels, no images at all,
                weights that are not finite numbers >= 0, or class_weight for images without
                labels; TypeError for an argument given twice or one `fit` does not take.
        """
        kwargs = _by_name(keras.Model.fit, args, kwargs)
        _check_loop_arguments(kwargs)
        x = nested_list_as_array(x, "x")
        sample_weight = kwargs.pop("sample_weight", None)
        validation_data = kwargs.pop("validation_data", None)
        if isinstance(validation_data, (tuple, list)) and validation_data:
            # Keras reads a list here as the tuple (x_val, y_val[, weights])
            validation_data = (nested_list_as_array(validation_data[0], "validation_data[0]"),
                               *validation_data[1:])
        _refuse_weights_of_generators(x, y, sample_weight, kwargs.get("class_weight"))
        _check_class_weight(x, y, kwargs.get("class_weight"))
        if validation_data is not None and not isinstance(validation_data, types.GeneratorType):
            self.check_keras_inputs(
                validation_data[0] if isinstance(validation_data, (tuple, list))
                else validation_data, "validation_data", allow_empty=False)
        self.check_keras_inputs(x, "x", allow_empty=False)
        _warn_if_image_targets(x, y, tuple(self.image_shape))
        # last: peeking takes a generator's first batch, which a later refusal would lose
        validation_data = self._checked_generator(validation_data, "validation_data")
        x = self._checked_generator(x, "x")
        y, given = _target_and_weights(x, y, sample_weight)
        if validation_data is not None:
            given["validation_data"] = _validation_with_weights(validation_data)
        try:
            with _graph_checks_as_value_errors(kwargs.get("class_weight")):
                return super().fit(x, y, **given, **kwargs)
        except BaseException:
            # a fit that failed (a bad batch in the trace, an interruption) leaves Keras' traced
            # train function half made, and every later fit failed ("Creating variables on a
            # non-first call"); the next fit traces afresh instead
            self.train_function = None
            raise

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Keras' `evaluate`, with x checked first and `sample_weight` kept as in `fit`.

        Raises:
            TypeError / ValueError: naming x or sample_weight, as `fit`.
        """
        kwargs = _by_name(keras.Model.evaluate, args, kwargs)
        if kwargs.get("_use_cached_eval_dataset"):
            # fit's own validation pass: its validation_data was checked by `fit`, and Keras
            # iterates its cached dataset (peeking into x here would take a batch from it)
            return super().evaluate(x, y, **kwargs)
        x = nested_list_as_array(x, "x")
        sample_weight = kwargs.pop("sample_weight", None)
        _check_batch_size(kwargs.get("batch_size"))
        _refuse_weights_of_generators(x, y, sample_weight, None)
        self.check_keras_inputs(x, "x", allow_empty=False)
        x = self._checked_generator(x, "x")
        y, weights = _target_and_weights(x, y, sample_weight)
        with _graph_checks_as_value_errors(None):
            return super().evaluate(x, y, **weights, **kwargs)

    def predict(self, x, *args, **kwargs):
        """Keras' `predict` (the deterministic reconstruction of `call`), with x checked first;
        an array of zero images gives an empty (0, *image_shape) float32 array (Keras' own loop
        fails on empty input).

        Raises:
            TypeError / ValueError: naming x, as `fit`.
        """
        kwargs = _by_name(keras.Model.predict, args, kwargs, after=2)
        _check_batch_size(kwargs.get("batch_size"))
        x = self._checked_generator(nested_list_as_array(x, "x"), "x")
        if self.check_keras_inputs(x, "x", allow_empty=True) == 0:
            return keras.ops.convert_to_numpy(self(x))
        with _graph_checks_as_value_errors(None):
            return super().predict(x, **kwargs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """Keras' `train_on_batch` on one batch of images, checked as `fit` checks an array
        (before, a dict gave TF's "Expected any non-tensor type", zero images a step on
        nothing, flattened images an EnsureShape error that named no argument), with
        sample_weight kept when no y is given.

        Raises:
            TypeError / ValueError: naming x or sample_weight, as `fit`; ValueError for
                class_weight (it needs labels, and a batch of images has none unless y is
                given).
        """
        x = nested_list_as_array(x, "x")
        self.check_keras_inputs(x, "x", allow_empty=False)
        _check_class_weight(x, y, class_weight)
        y, weights = _target_and_weights(x, y, sample_weight)
        return super().train_on_batch(x, y, class_weight=class_weight,
                                      return_dict=return_dict, **weights)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Keras' `test_on_batch`, with x checked first and sample_weight kept as in
        `train_on_batch`.

        Raises:
            TypeError / ValueError: naming x or sample_weight, as `fit`.
        """
        x = nested_list_as_array(x, "x")
        self.check_keras_inputs(x, "x", allow_empty=False)
        y, weights = _target_and_weights(x, y, sample_weight)
        return super().test_on_batch(x, y, return_dict=return_dict, **weights)

    def predict_on_batch(self, x):
        """Keras' `predict_on_batch`, with x checked first; zero images give an empty
        (0, *image_shape) float32 array, as `predict`.

        Raises:
            TypeError / ValueError: naming x, as `fit`.
        """
        x = nested_list_as_array(x, "x")
        if self.check_keras_inputs(x, "x", allow_empty=True) == 0:
            return keras.ops.convert_to_numpy(self(x))
        return super().predict_on_batch(x)

    def _checked_generator(self, x, name: str):
        """A Python generator's batches with the first one's structure checked before Keras
        starts (`check_keras_inputs`), and bare image batches passed on as (images,), which
        Keras' generator adapter needs. Other inputs are returned as they are."""
        if not isinstance(x, types.GeneratorType):
            return x
        try:
            first = next(x)
        except StopIteration:
            raise ValueError(f"{name} is a generator that yields no batches") from None
        if isinstance(first, (tuple, list)) and not first:
            raise ValueError(f"{name} is a generator whose first batch is an empty tuple: "
                             "yield images, or (images, labels[, sample_weight]) tuples")
        self.check_keras_inputs(first[0] if isinstance(first, (tuple, list)) else first,
                                f"{name} (its first batch)", allow_empty=False)

        def batches():
            for batch in itertools.chain([first], x):
                yield tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
        return batches()

    def dataset_images(self, dataset: tf.data.Dataset, name: str = "x") -> np.ndarray:
        """The images of a finite dataset of batches (elements (batch, *image_shape), or
        (images, labels[, weights]) tuples) as one array (n, *image_shape).

        Raises:
            TypeError / ValueError: naming `name`, as `check_keras_inputs`, and for an infinite
                dataset (`repeat()` without a count).
        """
        self.check_keras_inputs(dataset, name)
        if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError(f"{name} is an infinite dataset (repeat() without a count): "
                             "pass a finite one, e.g. dataset.take(n)")
        batches = [element[0] if isinstance(element, tuple) else element
                   for element in dataset.as_numpy_iterator()]
        if not batches:
            return np.zeros((0, *self.image_shape), np.float32)
        return np.concatenate(batches)

    def check_keras_inputs(self, x, name: str = "x", allow_empty: bool = True) -> int | None:
        """The structure of what `fit`, `evaluate` or `predict` get as `name`, checked before
        Keras traces or iterates it: images (batch, *image_shape) of a floating dtype, as one
        array or tensor, or a tf.data.Dataset whose elements are images or (images, labels[,
        sample_weight]); of a keras.utils.PyDataset, its first batch; an array's or tensor's
        pixel values. Later batches (and a generator's, whose first batch `fit` checks) and the
        pixel values of datasets and batches are checked in the graph (`checked_pixels`).
        Returns the number of images of an array or tensor (None for other inputs).

        Raises:
            TypeError: naming `name`, for None, a dict (this model has one input, the images)
                or integer pixels.
            ValueError: naming `name`, for another shape (e.g. flattened images, or a dataset
                of unbatched images), for NaN, Inf or pixels outside [0, 1] in an array or
                tensor (or a first batch), or for zero images when allow_empty is False.
        """
        if x is None:
            raise TypeError(f"{name} must be images, got None: pass the (batch, "
                            f"{', '.join(map(str, self.image_shape))}) array or a dataset of "
                            "images or of (images, labels) tuples")
        if isinstance(x, Mapping):
            raise TypeError(
                f"{name} must be images, not a dict (keys {sorted(map(str, x))}): this model has "
                f"one input; pass the (batch, {', '.join(map(str, self.image_shape))}) array or "
                "a dataset of images or of (images, labels) tuples")
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            spec = spec[0] if isinstance(spec, tuple) else spec
            if isinstance(spec, Mapping):
                raise TypeError(f"{name} must be a dataset of images or of (images, labels) "
                                f"tuples, not of dicts (keys {sorted(map(str, spec))})")
            if isinstance(spec, tf.TensorSpec):
                if spec.shape.rank == len(self.image_shape):
                    raise ValueError(
                        f"{name} is a dataset of single images (element shape "
                        f"{tuple(spec.shape)}): batch it, e.g. dataset.batch(64), so that "
                        f"its elements have shape (batch, "
                        f"{', '.join(map(str, self.image_shape))})")
                check_image_layout(
                    name, self.image_shape, spec.dtype.is_floating, spec.dtype.is_integer,
                    spec.dtype.name, None if spec.shape.rank is None else tuple(spec.shape))
            return None
        if isinstance(x, keras.utils.PyDataset):
            # its first batch, by index (nothing is consumed), like a generator's: a bad one
            # reaching Keras' trace fails deep inside it; later batches are checked in the graph
            if x.num_batches != 0:
                first = x[0]
                if isinstance(first, (tuple, list)) and first:
                    first = first[0]
                self.check_keras_inputs(first, f"{name} (its first batch)", allow_empty=False)
            return None
        if not (hasattr(x, "shape") and hasattr(x, "dtype")):
            return None  # a generator: its first batch checked by _checked_generator
        dtype = np.dtype(x.dtype.as_numpy_dtype if isinstance(x.dtype, tf.DType) else x.dtype)
        check_image_layout(name, self.image_shape, np.issubdtype(dtype, np.floating),
                                 np.issubdtype(dtype, np.integer), dtype, tuple(x.shape))
        # the pixel values of an array or eager tensor too: a one-line ValueError before Keras
        # starts, not the graph's InvalidArgumentError after its trace
        checks.pixel_values(name, np.asarray(x))
        count = int(x.shape[0])
        if count == 0 and not allow_empty:
            raise ValueError(f"{name} holds no images (shape {tuple(x.shape)}): there is "
                             "nothing to train on or to evaluate")
        return count


def _check_batch_size(batch_size) -> None:
    """None or an int >= 1 (Keras took 0 and used batches of 32 without a word)."""
    if batch_size is not None:
        checks.positive_int("batch_size", batch_size)


@contextlib.contextmanager
def _graph_checks_as_value_errors(class_weight):
    """The checks that run in the graph (pixels and weights of a dataset's later batches,
    `checked_pixels`, `_checked_weights`) as a one-line ValueError with their own message,
    instead of TF's InvalidArgumentError with a page of graph trace before it; and a label
    without a class weight (Keras' gather fails on it) as a ValueError naming class_weight."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        text = str(error)
        # one device: "assertion failed: [...]" on a line of its own; several (a
        # MirroredStrategy): after "(0) INVALID_ARGUMENT:"
        found = re.search(r"assertion failed: \[(.*)$", text, re.MULTILINE)
        if found:
            message = found.group(1).split("] [")[0].rstrip("] ").rstrip(".")
            raise ValueError(f"{message} (checked in the graph, in a batch of the data)"
                             ) from None
        label = re.search(r"indices\[\d+\] = (-?\d+) is not in \[0, (\d+)\)", text)
        # Keras looks a dataset's labels up in a table of the class weights, one per key 0 to
        # n - 1: an index past a table of that very size is a label without a weight
        if (class_weight is not None and label and "GatherV2" in text
                and int(label.group(2)) == len(class_weight)):
            raise ValueError(f"class_weight has weights for labels 0 to {len(class_weight) - 1}"
                             f", and a batch holds label {label.group(1)}: give every label "
                             "a weight (for a dataset Keras needs one per label)") from None
        raise


def _check_loop_arguments(kwargs: dict) -> None:
    """fit's batch_size (None or an int >= 1), epochs (an int >= 1) and initial_epoch (an int
    in [0, epochs]), checked before Keras starts: batch_size=0 trained (on batches Keras
    chose) and epochs=-1 returned an empty history, both without a word."""
    _check_batch_size(kwargs.get("batch_size"))
    epochs = checks.positive_int("epochs", kwargs.get("epochs", 1))
    initial = kwargs.get("initial_epoch", 0)
    # initial_epoch == epochs is a finished run resumed: Keras trains nothing, as it should
    if isinstance(initial, bool) or not isinstance(initial, (int, np.integer)) or not (
            0 <= initial <= epochs):
        raise ValueError(f"initial_epoch must be an integer in [0, epochs = {epochs}], got "
                         f"{initial!r}")


def nested_list_as_array(x: Any, name: str) -> Any:
    """A list of images (nested Python lists of numbers) as one numpy array, which is what this
    one-input model takes (Keras reads a list as one array per model input, and failed with a
    42 KB message), and [images] (Keras' list of one input array) as images; anything else is
    returned as it is.

    Raises:
        ValueError: naming `name`, for a ragged list (images of different shapes).
        TypeError: naming `name`, for a list of something other than numbers.
    """
    if not isinstance(x, list):
        return x
    if x and all(hasattr(item, "shape") and hasattr(item, "dtype") for item in x):
        # Keras' form for a model's inputs, one array each: this model has one
        if len(x) == 1:
            return x[0]
        raise TypeError(f"{name} is a list of {len(x)} arrays, Keras' form for a model with "
                        f"{len(x)} inputs; this model has one input, the images: pass one "
                        "(batch, height, width, channels) array (np.stack a list of images)")
    array = checks.as_array(name, x)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == bool):
        raise TypeError(f"{name} is a list of {array.dtype} values, not of pixel values; pass "
                        "a (batch, height, width, channels) array")
    return array


def check_image_layout(name: str, image_shape: Sequence[int], floating: bool, integer: bool,
                       dtype, shape: tuple | None) -> None:
    """The dtype and shape rules that every check of images shares (`check_images` and
    `checked_pixels` of the model, `KerasInputs.check_keras_inputs`): TypeError naming `name` for
    non-floating pixels, ValueError naming it for a shape other than (batch, *image_shape); an
    unknown (None) size matches any, an unknown rank (shape None) is not checked."""
    if not floating:
        raise TypeError(f"{name} must hold floating-point images in [0, 1], got dtype {dtype}"
                        + (" (divide integer pixels by 255)" if integer else ""))
    if shape is not None and (
            len(shape) != len(image_shape) + 1
            or any(n is not None and n != m for n, m in zip(shape[1:], image_shape))):
        raise ValueError(f"{name} must have shape (batch, "
                         f"{', '.join(map(str, image_shape))}), got {tuple(shape)}")


def _by_name(method, args: tuple, kwargs: dict, after: int = 3) -> dict:
    """The arguments after x and y (`after` = 3 counts self, x, y; 2 for predict's self, x) of
    Keras' `method`, positional ones named by its signature, so that a positional
    validation_data or sample_weight is checked like a named one."""
    names = [name for name, parameter in inspect.signature(method).parameters.items()
             if parameter.kind is parameter.POSITIONAL_OR_KEYWORD][after:]
    if len(args) > len(names):
        raise TypeError(f"{method.__name__}() takes at most {len(names) + after - 1} "
                        f"positional arguments after self, got {len(args) + after - 1}")
    named = dict(zip(names, args))
    twice = sorted(set(named) & set(kwargs))
    if twice:
        raise TypeError(f"{method.__name__}() got {', '.join(twice)} both by position and by "
                        "name")
    return {**named, **kwargs}


def _warn_if_image_targets(x, y, image_shape: tuple) -> None:
    """UserWarning for a y of images other than x itself (e.g. fit(x_noisy, x_clean)): the
    model trains on the ELBO of x alone, so a denoising target would be silently unused."""
    if y is None or y is x or not hasattr(y, "shape") or tuple(y.shape[1:]) != image_shape:
        return
    warnings.warn("y holds images, and the model trains on the ELBO of x alone: y is not used "
                  "(it serves only class_weight, as labels); a denoising target (x_noisy, "
                  "x_clean) is not supported", UserWarning, stacklevel=3)


def _refuse_weights_of_generators(x, y, sample_weight, class_weight) -> None:
    """Keras takes no y, sample_weight or class_weight beside a Python generator (its batches
    carry them): refused here, before the generator is touched, naming what was given."""
    if not isinstance(x, types.GeneratorType):
        return
    given = [name for name, value in (("y", y), ("sample_weight", sample_weight),
                                      ("class_weight", class_weight)) if value is not None]
    if given:
        raise ValueError(f"x is a generator, which takes no {', '.join(given)}: yield "
                         "(images, labels, sample_weight) batches instead")


def _check_class_weight(x, y, class_weight) -> None:
    """ValueError for class_weight beside images that carry no labels (no y, and x an array,
    tensor or dataset of bare images): Keras would weight by labels that do not exist; a
    TypeError / ValueError naming class_weight[label] for a weight that is not a finite
    number >= 0, and a TypeError for a key that is not an integer label."""
    if class_weight is not None and y is None and not _has_labels(x):
        raise ValueError(
            "class_weight weights each image by its label, and x came without labels: "
            "pass y (integer labels) or (images, labels) batches, or use sample_weight")
    if class_weight is None:
        return
    # Keras turns the weights into per-example weights in the graph, where a negative one
    # failed as an InvalidArgumentError naming sample_weight
    if not isinstance(class_weight, Mapping):
        raise TypeError("class_weight must be a dict {class index: weight}, got "
                        f"{type(class_weight).__name__}")
    for label, weight in class_weight.items():
        checks.non_negative_finite(f"class_weight[{label!r}]", weight)
    # Keras looks each label up as an integer key (labels without a key keep weight 1; for a
    # dataset it needs the keys 0 to n - 1 and says so): a key that is no integer, such as
    # the string "3", matched nothing, and every image kept weight 1 without a word
    for key in class_weight:
        integral = isinstance(key, (int, np.integer)) or (
            isinstance(key, (float, np.floating)) and float(key).is_integer())
        if isinstance(key, bool) or not integral:
            raise TypeError(f"class_weight's keys must be integer labels, got {key!r} "
                            f"({type(key).__name__}): Keras matches no label to it")


def _has_labels(x) -> bool:
    """Whether batches of x may carry labels: a dataset of (images, labels, ...) tuples, or a
    generator or PyDataset (not knowable before Keras iterates it); an array or tensor never."""
    if isinstance(x, tf.data.Dataset):
        return isinstance(x.element_spec, tuple) and len(x.element_spec) >= 2
    return not (hasattr(x, "shape") and hasattr(x, "dtype"))


def _target_and_weights(x, y, sample_weight, name: str = "sample_weight") -> tuple:
    """(y, {"sample_weight": w} or {}) for Keras' `fit` / `evaluate`: y = x when weights come
    without y (Keras packs (x, None, w) as x alone and drops the weights); weights given as an
    array are checked here (finite numbers >= 0; errors name `name`), others in the graph."""
    if sample_weight is None:
        return y, {}
    if isinstance(sample_weight, (list, tuple)):  # Keras' adapters take arrays, not lists
        sample_weight = checks.real_array(name, sample_weight).astype(np.float32)
    if hasattr(sample_weight, "shape"):
        weights = checks.real_array(name, sample_weight)
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"{name} must be finite and >= 0 (one weight per image)")
    return (x if y is None else y), {"sample_weight": sample_weight}


def _validation_with_weights(validation_data):
    """validation_data with its weights kept: Keras packs (x, None, weights) as x alone and
    drops the weights, so x stands in for y (the autoencoder's target), as in `fit`'s own."""
    if (isinstance(validation_data, (tuple, list)) and len(validation_data) == 3
            and validation_data[1] is None and validation_data[2] is not None):
        images, _, weights = validation_data
        target, given = _target_and_weights(images, None, weights,
                                            "validation_data's sample_weight")
        return images, target, given["sample_weight"]
    return validation_data


def images_and_weights(data) -> tuple:
    """(images, per-example weights or None) of a batch given as x, (x,), (x, y) or (x, y, w).

    The weights (Keras' sample_weight, or class_weight turned into them) are checked in the
    graph: shape (batch,) or (batch, 1), finite and >= 0 (InvalidArgumentError naming
    sample_weight otherwise)."""
    x, _, weights = keras.utils.unpack_x_y_sample_weight(
        tuple(data) if isinstance(data, list) else data)
    if weights is None:
        return x, None
    weights = tf.convert_to_tensor(weights)
    if not weights.dtype.is_floating and not weights.dtype.is_integer:
        raise TypeError(f"sample_weight must be numbers, got dtype {weights.dtype.name}")
    weights = tf.cast(weights, tf.float32)
    if weights.shape.rank is None:
        # Keras relaxes a retraced step's weights to an unknown rank (a fit with (batch,) weights
        # after one with (batch, 1), or weights from tf.py_function): checked when the step runs
        tf.debugging.assert_less_equal(tf.rank(weights), 2, message=(
            "sample_weight must have shape (batch,) or (batch, 1), one weight per image"))
        tf.debugging.assert_equal(tf.size(weights), tf.shape(weights)[0], message=(
            "sample_weight must have shape (batch,) or (batch, 1), one weight per image"))
        weights = tf.reshape(weights, [-1])
    if weights.shape.rank == 2 and weights.shape[-1] == 1:
        weights = tf.squeeze(weights, -1)
    if weights.shape.rank != 1:
        raise ValueError(f"sample_weight must have shape (batch,) or (batch, 1), one weight "
                         f"per image; got shape {tuple(weights.shape)}")
    tf.debugging.assert_equal(tf.shape(weights)[0], tf.shape(x)[0], message=(
        "sample_weight must hold one weight per image in the batch"))
    tf.debugging.assert_all_finite(weights, "sample_weight must be finite")
    tf.debugging.assert_non_negative(weights, message="sample_weight must be >= 0")
    return x, weights
