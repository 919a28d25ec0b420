"""Exceptions raised by ocnb. Each message names the offending column, unit,
cluster or file so that a user can fix the input."""

from __future__ import annotations

__all__ = [
    "OcnbError",
    "MemberTableError",
    "UnknownClusterError",
    "DataIntegrityError",
    "IsochroneRangeError",
]


class OcnbError(Exception):
    """Base class of ocnb's errors."""


class MemberTableError(OcnbError, ValueError):
    """A member table is unusable: missing/misspelt column, NaN photometry,
    wrong parallax unit, duplicate ``source_id``..."""


class UnknownClusterError(OcnbError, KeyError):
    """A cluster name that no catalogue knows (message lists close matches)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DataIntegrityError(OcnbError, OSError):
    """A shipped data file is missing or fails its SHA-256 check."""


class IsochroneRangeError(OcnbError, ValueError):
    """An isochrone was requested outside the PARSEC grid."""
