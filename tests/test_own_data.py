"""Your own data (mlp_core/tabular.py, results/folder/dataset.py): tables, .npz files and
scikit-learn's bundled real sets read and checked, labels of any kind as classes, seeded
stratified splits, standardisation kept by the model (model.npz, model.onnx), and every bad
input refused in one line that names the file and the column or row."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlp_core.data import load_dataset
from mlp_core.model import Params, init_params, load_params, predict_proba, raw_inputs, save_params
from mlp_core.tabular import (
    BadData,
    Labelled,
    Scaling,
    classes_of,
    make_labelled_dataset,
    read_source,
    stratified_split,
)
from results.folder.dataset import load_data
from results.sweep.spec import SweepSpec

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def cancer_csv(path, rows=None, label_name="diagnosis"):
    """scikit-learn's breast cancer set as a CSV with text labels (benign, malignant)."""
    d = sklearn_datasets.load_breast_cancer()
    frame = pd.DataFrame(d.data, columns=[c.replace(" ", "_") for c in d.feature_names])
    frame[label_name] = np.asarray(d.target_names)[d.target]
    (frame if rows is None else frame.iloc[:rows]).to_csv(path, index=False)
    return path


def test_a_csv_with_text_labels_becomes_classes_in_a_fixed_order_with_their_names(tmp_path):
    data = read_source(cancer_csv(tmp_path / "cancer.csv"), label="diagnosis")
    y, y_test, classes = classes_of(data)
    assert classes == ("benign", "malignant") and y_test is None  # text: code-point order
    assert data.X.shape == (569, 30) and data.X.dtype == np.float32
    raw = pd.read_csv(tmp_path / "cancer.csv")
    assert np.array_equal(np.asarray(classes)[y], raw["diagnosis"].to_numpy())
    assert np.array_equal(data.X, raw.drop(columns="diagnosis").to_numpy(np.float32))
    assert data.files["data"]["sha256"] and data.feature_names[0] == "mean_radius"


def test_the_label_column_defaults_to_label_then_the_last_and_columns_can_be_chosen(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2, 3, 4], "label": ["x", "y", "x", "y"], "b": [5, 6, 7, 8]}).to_csv(path, index=False)
    assert read_source(path).feature_names == ["a", "b"]  # "label" wherever it stands
    path2 = tmp_path / "t2.csv"
    pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [5, 6, 7, 8], "kind": [0, 1, 0, 1]}).to_csv(path2, index=False)
    data = read_source(path2)
    assert data.feature_names == ["a", "b"] and list(data.labels) == ["0", "1", "0", "1"]
    assert read_source(path2, features=("b",)).feature_names == ["b"]
    assert read_source(path2, drop=("a",)).feature_names == ["b"]
    assert read_source(path2, label="a").feature_names == ["b", "kind"]
    tsv = tmp_path / "t.tsv"
    pd.read_csv(path2).to_csv(tsv, sep="\t", index=False)
    assert np.array_equal(read_source(tsv).X, data.X)


def test_parquet_reads_as_the_same_csv(tmp_path):
    pytest.importorskip("pyarrow")
    csv = cancer_csv(tmp_path / "c.csv")
    pd.read_csv(csv).to_parquet(tmp_path / "c.parquet")
    a, b = read_source(csv), read_source(tmp_path / "c.parquet")
    assert np.array_equal(a.X, b.X) and np.array_equal(a.labels, b.labels) and a.feature_names == b.feature_names


def _bad(tmp_path, frame: pd.DataFrame, name="bad.csv", **kw):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    with pytest.raises(BadData) as e:
        data = read_source(path, **kw)
        make_labelled_dataset(data, "file", 0.2, 0.2, 0)
    text = str(e.value)
    assert str(path) in text and "\n" not in text
    return text


def test_each_bad_table_is_refused_in_one_line_naming_the_file_and_the_column_or_row(tmp_path):
    good = {"a": [1.0, 2, 3, 4, 5, 6, 7, 8], "b": [1.0, 0, 1, 0, 1, 0, 1, 0], "label": list("xyxyxyxy")}
    assert "no column 'nope'" in _bad(tmp_path, pd.DataFrame(good), label="nope")
    assert "no column 'c'" in _bad(tmp_path, pd.DataFrame(good), features=("a", "c"))
    text = _bad(tmp_path, pd.DataFrame({**good, "b": ["1", "0", "1", "zero", "1", "0", "one", "0"]}))
    assert "column 'b', row 4 (line 5): 'zero' is not a number (2 such cells)" in text and "--drop b" in text
    nan = dict(good, a=[1.0, 2, np.nan, 4, 5, np.inf, 7, np.nan])
    assert "3 missing or infinite values, the first at row 3, column 'a'" in _bad(tmp_path, pd.DataFrame(nan))
    assert "every row has the label 'x'" in _bad(tmp_path, pd.DataFrame(dict(good, label=["x"] * 8)))
    lonely = dict(good, label=list("xyxyxyxz"))
    assert "class 'z' has 1 row left for the test split" in _bad(tmp_path, pd.DataFrame(lonely))
    missing_label = pd.DataFrame(dict(good, label=["x", "y", None, "y", "x", "y", "x", "y"]))
    assert "column 'label', row 3 (line 4): no label" in _bad(tmp_path, missing_label)
    (tmp_path / "notes.txt").write_text("a,b\n")
    with pytest.raises(BadData, match="notes.txt: not a data file this tool reads"):
        read_source(tmp_path / "notes.txt")


def test_each_bad_npz_is_refused_and_none_is_ever_unpickled(tmp_path):
    def bad(**arrays):
        path = tmp_path / "bad.npz"
        np.savez(path, **arrays)
        with pytest.raises(BadData) as e:
            make_labelled_dataset(read_source(path), "file", 0.2, 0.2, 0)
        assert str(path) in str(e.value)
        return str(e.value)

    X, y = np.random.default_rng(0).random((20, 3)), np.arange(20) % 2
    assert "20 rows of features but 19 labels" in bad(X=X, y=y[:19])
    assert "no array y" in bad(X=X, labels=y)
    assert "X_test and y_test go together" in bad(X=X, y=y, X_test=X)
    assert "X_test has 2 features, X has 3" in bad(X=X, y=y, X_test=X[:, :2], y_test=y)
    assert "test label '7' (row 1) is not among the training data's classes" in bad(X=X, y=y, X_test=X, y_test=y + 7)
    assert "features must be numbers" in bad(X=X.astype(str), y=y)
    marker = tmp_path / "unpickled"
    evil = np.array([Boom(str(marker))], dtype=object)
    assert "holds Python objects: refused (never unpickled)" in bad(X=X, y=np.array([evil[0]] * 20, dtype=object))
    assert not marker.exists()


class Boom:
    """Pickled into an .npz; unpickling it would leave a file behind."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_stratified_splits_keep_each_class_share_and_are_seeded():
    y = np.repeat(np.arange(3), [50, 30, 20])
    kept, held = stratified_split(y, 0.2, [0, 1], "test", "s")
    assert np.array_equal(np.bincount(y[held]), [10, 6, 4])
    assert not set(kept) & set(held) and len(kept) + len(held) == 100
    again = stratified_split(y, 0.2, [0, 1], "test", "s")
    assert all(np.array_equal(a, b) for a, b in zip((kept, held), again, strict=True))
    assert not np.array_equal(stratified_split(y, 0.2, [1, 1], "test", "s")[1], held)


def test_standardisation_uses_the_training_part_alone_and_a_constant_column_stays_finite():
    X = np.array([[1.0, 5.0], [3.0, 5.0], [100.0, 5.0]], np.float32)
    s = Scaling.fit("auto", X[:2])
    assert s.kind == "standard" and np.allclose(s.mean, [2, 5]) and np.allclose(s.std, [1, 1])
    assert np.allclose(s.apply(X), [[-1, 0], [1, 0], [98, 0]])
    assert Scaling.fit("auto", X.astype(np.uint8)).kind == "pixels"
    assert np.array_equal(Scaling.fit("none", X).apply(X), X)


def test_uint8_images_from_an_npz_are_split_and_scaled_as_from_idx_files(tmp_path, mnist_t10k, small_data_dir):
    """Fashion-MNIST (or MNIST) given as an .npz of the same arrays is the same data: the same
    split, the same inputs, the same classes, so the same tables (BENCHMARKS.md has the full
    Fashion-MNIST sweep both ways)."""
    images, labels = mnist_t10k
    np.savez(tmp_path / "mnist.npz", X=images[:8000], y=labels[:8000], X_test=images[8000:], y_test=labels[8000:])
    a = load_dataset("mnist", small_data_dir, 0.2, 0)
    b = load_data(SweepSpec(dataset="file", data=str(tmp_path / "mnist.npz")))
    for part in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        assert np.array_equal(getattr(a, part), getattr(b, part)), part
    assert b.classes == a.classes and b.n_inputs == 784


def test_a_bundled_set_keeps_its_class_names():
    data = load_data(SweepSpec(dataset="wine"))
    assert data.classes == ("class_0", "class_1", "class_2") and data.n_inputs == 13
    assert len(data.y_test) == 36 and len(data.y_val) == 28  # 20% of 178, then 20% of the rest
    assert data.files["data"]["sha256"] == load_data(SweepSpec(dataset="wine")).files["data"]["sha256"]


def test_a_standardising_model_takes_raw_features_in_numpy_in_its_npz_and_in_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from results.model.onnx_export import onnx_bytes

    rng = np.random.default_rng(0)
    params = init_params(8, rng, n_inputs=5, n_classes=3)
    mean, std = rng.normal(size=5).astype(np.float32), rng.uniform(0.5, 2, 5).astype(np.float32)
    model = Params(*params.as_dict().values(), scaling=(mean, std))
    raw = rng.normal(3, 2, (7, 5)).astype(np.float32)
    expected = predict_proba(params, (raw - mean) / std)
    assert np.allclose(predict_proba(model, raw_inputs(model, raw)), expected)
    save_params(tmp_path / "m.npz", model)
    back = load_params(tmp_path / "m.npz")
    assert np.array_equal(back.scaling[1], std)
    session = ort.InferenceSession(onnx_bytes(back))
    assert [i.name for i in session.get_inputs()] == ["features"] and session.get_inputs()[0].shape == ["N", 5]
    logits, proba = session.run(None, {"features": raw})
    assert proba.shape == (7, 3) and np.allclose(proba, expected, atol=1e-5)


def test_labels_given_as_arrays_of_any_kind():
    X = np.zeros((6, 2))
    for labels, names in ((np.array([3, 1, 3, 1, 2, 2]), ("1", "2", "3")),
                          (np.array(["b", "a", "c", "a", "b", "c"]), ("a", "b", "c")),
                          (np.array([True, False, True, False, True, False]), ("False", "True")),
                          (np.array([2.0, 1.0, 2.0, 1.0, 2.0, 1.0]), ("1", "2"))):
        y, _, classes = classes_of(Labelled(X, labels, "arrays"))
        assert classes == names and np.array_equal(np.asarray(classes)[y], [_str(v) for v in labels])


def _str(v) -> str:
    return str(int(v)) if isinstance(v, float) else str(v)


def test_rows_are_counted_right_whatever_the_last_line_and_quoted_line_breaks(tmp_path):
    for text in ('a,label\n1,x\n2,y\n3,"two\nlines"\n', 'a,label\n1,x\n2,y\n3,z'):
        (tmp_path / "t.csv").write_text(text)
        data = read_source(tmp_path / "t.csv")
        assert data.X[:, 0].tolist() == [1, 2, 3] and len(data.labels) == 3
    assert data.labels.tolist() == ["x", "y", "z"]
