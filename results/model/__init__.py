"""The model after the sweep: the chosen trial's own weights read from its checkpoints
(from_checkpoints.py) or the configuration trained again (retrain.py), written as best/
(export.py: npz, JSON, its epochs; onnx_export.py: ONNX) and read back (load.py); the run's
PNGs (figures.py, each figure's look in plots.py, the search's drawn beside the export by
plot_process.py), the report (report.py), and evaluate and predict (inference.py).

Imports the rooms below it: views, the run folder, what a sweep is.
"""
