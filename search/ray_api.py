"""Ray and the parts of Ray Tune the driver uses, imported in this one place once Ray's
environment is set: Ray reads some of it into constants at its own import (its single-machine
mode, Tune's logger switches), so it must be set first. The entry points (search.api.run, and
through it the run command) set it for the sweep's address before they import the sweep; a
module that imports this one without them (a test, a script) gets a local run's settings
(rayenv.ensure).

Leaves out what the settings are (rayenv.py). A trial's code (trainable.py) imports Ray from
here too, so that whichever module comes first, Ray comes after its settings; on a node, where
Ray is already running, they change nothing.
"""
from . import rayenv

rayenv.ensure()  # after an entry point's configure(address), a no-op

import logging  # noqa: E402

# In a Jupyter kernel Ray's classes say at import, twice, that ipywidgets would make their reprs
# richer; the sweep shows none of them
logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune import Callback, ProgressReporter  # noqa: E402
from ray.tune.experiment import Trial  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler  # noqa: E402
from ray.tune.search.basic_variant import BasicVariantGenerator  # noqa: E402

__all__ = ["ray", "tune", "Callback", "ProgressReporter", "Trial", "ASHAScheduler", "FIFOScheduler",
           "TrialScheduler", "BasicVariantGenerator"]
