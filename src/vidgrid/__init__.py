"""vidgrid: fast video recognition training with multigrid schedules (Wu et al., CVPR 2020).

The Python API (:mod:`vidgrid.api`) is reachable here, loaded on first use so that importing a part of
the package (``vidgrid.multigrid``, ``vidgrid.config``) stays light: ``vidgrid.train``,
``vidgrid.evaluate``, ``vidgrid.predict``, ``vidgrid.load_model``, ``vidgrid.recipe_config``.
"""

__version__ = "0.1.0"

API = ("train", "evaluate", "predict", "load_model", "recipe_config")


def __getattr__(name: str):
    if name in API:
        from vidgrid import api

        return getattr(api, name)
    raise AttributeError(f"module 'vidgrid' has no attribute {name!r}")
