"""The exported model as ONNX (best/model.onnx): the README's NumPy lines as a graph, for the
runtimes people run a small classifier in (onnxruntime in a service, a web page, a phone).

Leaves out the weights' own format (export.py, load.py). Needs the `onnx` package (`pip install -e
'.[onnx]'`); without it the export writes the rest and says so in one line. Also a command, for
a model exported without it:  python -m results.model.onnx_export runs/NAME/best
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mlp_core.data import sha256_file
from mlp_core.files import atomic_write
from mlp_core.model import SCALING_NAMES, Params

from ..columns import MODEL_JSON, MODEL_ONNX

# Opset 13 and IR version 7: what onnxruntime has read since 1.6 (2020), so an older runtime in
# a service or a browser takes the file too.
OPSET, IR_VERSION = 13, 7
# The input: MNIST's pixels scaled to [0, 1] (as every image model takes them), or a table's raw
# features, which a standardising model scales itself
INPUT, FEATURES, LOGITS, PROBABILITIES = "pixels", "features", "logits", "probabilities"
MISSING = (f"{MODEL_ONNX} not written: the onnx package is not installed (pip install -e '.[onnx]', "
           f"then python -m results.model.onnx_export MODEL_DIR)")


def onnx_bytes(params: Params) -> bytes:
    """The model as an ONNX graph: float32 inputs [N, D] in (MNIST's: pixels [N, 784] scaled to
    [0, 1]; a standardising model's: raw features, (x - x_mean) / x_std inside the graph), the C
    logits and their softmax probabilities out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    arrays = params.as_dict()
    nodes, x = [], INPUT
    if params.scaling is not None:
        arrays.update(zip(SCALING_NAMES, params.scaling, strict=True))
        x = FEATURES
        nodes += [helper.make_node("Sub", [x, "x_mean"], ["centred"]),
                  helper.make_node("Div", ["centred", "x_std"], ["standardised"])]
    weights = [numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), name)
               for name, a in arrays.items()]
    first = nodes[-1].output[0] if nodes else x
    D, C = params.n_inputs, params.n_classes
    nodes += [helper.make_node("MatMul", [first, "W1"], ["xW1"]),
              helper.make_node("Add", ["xW1", "b1"], ["z1"]),
              helper.make_node("Relu", ["z1"], ["a1"]),  # (N, H)
              helper.make_node("MatMul", ["a1", "W2"], ["a1W2"]),
              helper.make_node("Add", ["a1W2", "b2"], [LOGITS]),  # (N, C)
              helper.make_node("Softmax", [LOGITS], [PROBABILITIES], axis=1)]
    graph = helper.make_graph(
        nodes, "mlp_sweep", [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", D])],
        [helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, ["N", C]),
         helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, ["N", C])],
        initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="mlp-sweep")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_onnx(model_dir: str | Path, params: Params) -> tuple[str | None, str | None]:
    """Write model_dir/model.onnx atomically: (its SHA-256, None), or (None, why not) without
    the onnx package, a stale model.onnx of other weights then removed."""
    path = Path(model_dir) / MODEL_ONNX
    try:
        import onnx  # noqa: F401
    except ImportError:
        path.unlink(missing_ok=True)
        return None, MISSING.replace("MODEL_DIR", str(model_dir))
    with atomic_write(path) as f:
        f.write(onnx_bytes(params))
    return sha256_file(path), None


def main(argv: list[str] | None = None) -> int:
    """Write model.onnx beside an exported model.npz and record its SHA-256 in model.json."""
    from ..folder.table import write_json_atomic
    from .load import load_model, model_paths

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m results.model.onnx_export MODEL_DIR", file=sys.stderr)
        return 2
    model_dir = model_paths(args[0])[0].parent  # the folder, or its model.npz
    params, meta = load_model(model_dir)
    digest, why = write_onnx(model_dir, params)
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 1
    write_json_atomic({**meta, "model_onnx_sha256": digest}, model_dir / MODEL_JSON)
    print(model_dir / MODEL_ONNX)
    return 0


if __name__ == "__main__":
    sys.exit(main())
