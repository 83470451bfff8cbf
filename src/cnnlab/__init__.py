"""cnnlab: train and compare small image classifiers, with evidence.

The Python API (see :mod:`cnnlab.api`): ``cnnlab.train``, ``cnnlab.run_study``,
``cnnlab.load_results``, ``cnnlab.predict``, ``cnnlab.register_model``,
``cnnlab.load_dataset`` and ``cnnlab.Dataset.from_arrays``. They are imported on first use, so that ``import cnnlab``
(and the command line's ``--help``) stays fast.
"""

from typing import Any

from cnnlab.version import __version__

API = ("Dataset", "load_dataset", "load_results", "predict", "register_model", "run_study", "train")
__all__ = [*API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in API:
        from cnnlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
