"""The model after the sweep: the chosen trial exported from its checkpoints (finalist.py) or
trained again (retrain.py), written as npz and JSON (export.py) and ONNX (onnx_export.py), the
plots (plots.py, drawn beside the export by plot_process.py), the report (report.py), and
evaluate and predict (inference.py).

Imports the rooms below it: views, the run folder, what a sweep is.
"""
