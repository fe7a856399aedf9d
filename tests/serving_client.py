"""A stand-in for TF Serving's REST predict API over an exported SavedModel, WITHOUT lipvae_tf.

TF Serving cannot run on this machine (no docker, no binary), so this script does what its REST
handler does with a JSON body: the row format ("instances") is turned into one tensor per named
input (each instance an object with every input name; values stacked along a new batch axis,
converted to the input's dtype; every instance of one shape), or the columnar format ("inputs") is
taken as is; the signature is called; the reply is {"predictions": [...]} (one value per row for a
single output, else one object per row) or {"outputs": ...}. Only tensorflow, numpy and json are
imported; importing lipvae_tf is made to fail (an import hook), and checked at the end.

    python serving_client.py JOBS.json RESULTS.json

JOBS.json: a list of {"export_dir": ..., "body": <REST body>} and/or {"export_dir": ...,
"signature": name, "arrays": {input: nested list}} (a direct call with those tensors). RESULTS.json:
the replies in order, plus "signatures" (per export_dir, each signature's input and output names,
dtypes and shapes). NaN travels as the JSON token NaN, as TF Serving writes it.
"""
from __future__ import annotations

import json
import sys


class _RefuseLipvae:
    """Import hook: `import lipvae_tf` (or a submodule) raises ImportError in this process."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "lipvae_tf" or name.startswith("lipvae_tf."):
            raise ImportError(f"{name} must not be imported by a TF Serving stand-in")
        return None


sys.meta_path.insert(0, _RefuseLipvae())

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def input_specs(signature) -> dict:
    """{name: tf.TensorSpec} of a loaded signature's inputs."""
    return dict(signature.structured_input_signature[1])


def describe(signature) -> dict:
    """Names, dtypes and shapes of a signature's inputs and outputs."""
    def spec(s):
        return {"dtype": s.dtype.name, "shape": [None if d is None else int(d) for d in s.shape]}

    return {"inputs": {k: spec(v) for k, v in input_specs(signature).items()},
            "outputs": {k: spec(v) for k, v in signature.structured_outputs.items()}}


def instances_to_tensors(instances: list, specs: dict) -> dict:
    """TF Serving's row format: one stacked tensor per named input, in the input's dtype."""
    if not isinstance(instances, list) or not instances:
        raise ValueError("'instances' must be a non-empty list")
    if isinstance(instances[0], dict):
        columns = {}
        for index, instance in enumerate(instances):
            if not isinstance(instance, dict) or set(instance) != set(specs):
                raise ValueError(f"instance {index} must be an object with exactly the inputs "
                                 f"{sorted(specs)}")
            for name in specs:
                columns.setdefault(name, []).append(instance[name])
    elif len(specs) == 1:
        columns = {next(iter(specs)): instances}
    else:
        raise ValueError(f"signature has inputs {sorted(specs)}: every instance must be an object")
    tensors = {}
    for name, values in columns.items():
        shapes = {np.shape(v) for v in values}
        if len(shapes) != 1:
            raise ValueError(f"input {name!r}: instances of different shapes {sorted(shapes)}")
        tensors[name] = tf.constant(np.array(values, dtype=specs[name].dtype.as_numpy_dtype))
    return tensors


def columns_to_tensors(inputs, specs: dict) -> dict:
    """TF Serving's columnar format: {"inputs": {name: value}} (or a bare value, one input)."""
    if not isinstance(inputs, dict):
        if len(specs) != 1:
            raise ValueError(f"signature has inputs {sorted(specs)}: 'inputs' must be an object")
        inputs = {next(iter(specs)): inputs}
    if set(inputs) != set(specs):
        raise ValueError(f"'inputs' must name exactly {sorted(specs)}, got {sorted(inputs)}")
    return {name: tf.constant(np.array(value, dtype=specs[name].dtype.as_numpy_dtype))
            for name, value in inputs.items()}


def _json_value(value):
    """An output (or one row of it) as JSON values; strings (bytes) decoded as UTF-8."""
    array = np.asarray(value)
    if array.dtype.kind in "SO":
        return np.vectorize(lambda b: b.decode(), otypes=[object])(array).tolist()
    return array.tolist()


def predict(loaded, body: dict) -> dict:
    """The reply TF Serving's `:predict` gives for this REST body."""
    name = body.get("signature_name", "serving_default")
    if name not in loaded.signatures:
        raise ValueError(f"Serving signature name: {name!r} not found in signature def")
    signature = loaded.signatures[name]
    specs = input_specs(signature)
    if "instances" in body:
        outputs = signature(**instances_to_tensors(body["instances"], specs))
        outputs = {k: v.numpy() for k, v in outputs.items()}
        rows = {len(v) for v in outputs.values()}
        if len(rows) != 1:
            raise ValueError(f"outputs of inconsistent batch size {sorted(rows)}")
        if len(outputs) == 1:
            return {"predictions": _json_value(next(iter(outputs.values())))}
        return {"predictions": [{k: _json_value(v[i]) for k, v in outputs.items()}
                                for i in range(rows.pop())]}
    outputs = signature(**columns_to_tensors(body["inputs"], specs))
    outputs = {k: _json_value(v.numpy()) for k, v in outputs.items()}
    return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}


def call(loaded, name: str, arrays: dict) -> dict:
    """A direct call of signature `name` with these arrays (converted to the input dtypes)."""
    signature = loaded.signatures[name]
    specs = input_specs(signature)
    outputs = signature(**{k: tf.constant(np.array(v, dtype=specs[k].dtype.as_numpy_dtype))
                           for k, v in arrays.items()})
    return {k: _json_value(v.numpy()) for k, v in outputs.items()}


def main(jobs_path: str, results_path: str) -> None:
    with open(jobs_path, encoding="utf-8") as f:
        jobs = json.load(f)
    loaded, replies = {}, []
    for job in jobs:
        directory = job["export_dir"]
        if directory not in loaded:
            loaded[directory] = tf.saved_model.load(directory)
        if "body" in job:
            body = json.loads(json.dumps(job["body"]))  # what travels over HTTP
            replies.append(predict(loaded[directory], body))
        else:
            replies.append(call(loaded[directory], job["signature"], job["arrays"]))
    signatures = {d: {name: describe(s) for name, s in m.signatures.items()}
                  for d, m in loaded.items()}
    imported = sorted(name for name in sys.modules if name.split(".")[0] == "lipvae_tf")
    assert "lipvae_tf" not in sys.modules and not imported, imported
    with open(results_path, "w", encoding="utf-8") as f:
        json.dump({"replies": replies, "signatures": signatures, "lipvae_tf_modules": imported,
                   "python_modules": len(sys.modules)}, f)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
