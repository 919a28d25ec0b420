"""Exceptions raised by ocnb. Each message names the offending value, column,
unit, cluster, file, address or environment variable so that a user can fix
the input.

Every class derives from :class:`OcnbError` *and* from the built-in exception
a caller would expect for that kind of problem (``ValueError`` for a bad
value, ``OSError`` for a file, ``ConnectionError`` for a network address...),
so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "OcnbError",
    "MemberTableError",
    "UnknownClusterError",
    "DataIntegrityError",
    "DataHomeError",
    "CorruptCacheError",
    "CacheKeyError",
    "IsochroneRangeError",
    "IsochroneParameterError",
    "PhotometryError",
    "PhotometryRangeError",
    "SchedulerConnectionError",
]


class OcnbError(Exception):
    """Base class of ocnb's errors."""


class MemberTableError(OcnbError, ValueError):
    """A member table is unusable: missing/misspelt column, NaN photometry,
    wrong parallax unit, duplicate ``source_id``, no rows..."""


class UnknownClusterError(OcnbError, KeyError):
    """A cluster name that no catalogue knows (message lists close matches)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DataIntegrityError(OcnbError, OSError):
    """A shipped data file is missing or fails its SHA-256 check."""


class DataHomeError(OcnbError, OSError):
    """The data home (``$OCNB_DATA_DIR`` or ``~/.ocnb_data``) or a folder in it
    cannot be used: it is a regular file, or it cannot be created or written."""


class CorruptCacheError(OcnbError, OSError):
    """A cached file failed its checksum, lost (or has an unreadable) checksum
    record, or cannot be decoded although its checksum matches."""


class CacheKeyError(OcnbError, ValueError):
    """A cache key or cache name that is not a plain file name."""


class IsochroneRangeError(OcnbError, ValueError):
    """An isochrone was requested outside the PARSEC grid (or with NaN)."""


class IsochroneParameterError(OcnbError, TypeError):
    """An isochrone parameter that is not a number (``None``, a string, an array)."""


class PhotometryError(OcnbError, ValueError):
    """A photometric request ocnb cannot answer: unknown band or extinction law,
    invalid error-model settings (``n_obs`` ≤ 0, a negative floor)."""


class PhotometryRangeError(PhotometryError):
    """A photometric input outside the model's validity range: A_V < 0, NaN
    Teff, a magnitude fainter than the detection limit of the error model."""


class SchedulerConnectionError(OcnbError, ConnectionError):
    """A dask scheduler address that cannot be reached, or that answers but is
    not a dask scheduler (e.g. the dashboard's HTTP port)."""
