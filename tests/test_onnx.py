"""best/model.onnx: the exported model as an ONNX graph, run by onnxruntime against the NumPy
model on the tests' 2,000 held-out images; recorded in model.json; without the onnx package the
rest is exported and one line says how to get it."""
from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest

from mlp_core.model import forward
from mlp_core.train import TrainConfig, Trainer, train
from results.columns import MODEL_ONNX
from results.model.export import export_model
from results.model.load import load_model
from results.model.onnx_export import main

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def trained(small_dataset):
    """A model trained two epochs on the tests' split, as a sweep's trial would be."""
    ds = small_dataset
    cfg = TrainConfig(hidden_size=64, learning_rate=0.1, l2=0.001, epochs=2)
    trainer = Trainer(cfg)
    for _ in train(cfg, ds.X_train, ds.y_train, ds.X_val, ds.y_val, trainer=trainer):
        pass
    return trainer.params


def test_onnxruntime_gives_the_numpy_models_logits_and_classes(trained, small_dataset, tmp_path):
    note = export_model(tmp_path, trained, {"trial_id": "t"})
    assert note is None
    meta = json.loads((tmp_path / "model.json").read_text())
    onnx_file = tmp_path / MODEL_ONNX
    assert meta["model_onnx_sha256"] == hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["pixels"]
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
    X = small_dataset.X_test  # float32 pixels / 255, as the README's lines make them
    assert X.dtype == np.float32 and len(X) == 2000
    logits, probabilities = session.run(None, {"pixels": X})
    expected = forward(trained, X)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)
    assert (logits.argmax(1) == expected.argmax(1)).all()
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    assert (probabilities.argmax(1) == expected.argmax(1)).all()
    assert 0.8 < (logits.argmax(1) == small_dataset.y_test).mean()  # a trained model, not noise


def test_without_the_onnx_package_the_rest_is_exported_and_one_line_says_how(trained, tmp_path,
                                                                             monkeypatch, capsys):
    export_model(tmp_path, trained, {})
    assert (tmp_path / MODEL_ONNX).exists()
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    note = export_model(tmp_path, trained, {})
    assert note and "\n" not in note and "pip install -e '.[onnx]'" in note
    assert not (tmp_path / MODEL_ONNX).exists()  # not left describing other weights
    params, meta = load_model(tmp_path)
    assert "model_onnx_sha256" not in meta and params.hidden_size == 64
    assert main([str(tmp_path)]) == 1 and "onnx package is not installed" in capsys.readouterr().err
    monkeypatch.delitem(sys.modules, "onnx")
    assert main([str(tmp_path / "model.npz")]) == 0  # the command writes it afterwards
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["model_onnx_sha256"] == hashlib.sha256((tmp_path / MODEL_ONNX).read_bytes()).hexdigest()
