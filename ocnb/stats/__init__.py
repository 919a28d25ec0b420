"""Statistical models shared by the paper modules.

``line``  a straight line with errors on both axes and intrinsic scatter, sampled with PyMC:
          :func:`fit_line` → :class:`LineFit` (``summary``, ``converged``, ``plot()``, ``to_frame()``).

Importing this package imports neither PyMC nor PyTensor and changes no setting; the first
fit configures PyTensor's compile directory (:func:`configure_pytensor`) and imports PyMC.
"""

from __future__ import annotations

from .line import (
    FAST_BOUNDS,
    FAST_SAMPLER,
    FULL_BOUNDS,
    FULL_SAMPLER,
    PARAMS,
    LineFit,
    LineFitInputError,
    configure_pytensor,
    fit_line,
    line_model,
    sampler_settings,
)

__all__ = [
    "FAST_BOUNDS",
    "FAST_SAMPLER",
    "FULL_BOUNDS",
    "FULL_SAMPLER",
    "PARAMS",
    "LineFit",
    "LineFitInputError",
    "configure_pytensor",
    "fit_line",
    "line_model",
    "sampler_settings",
]
