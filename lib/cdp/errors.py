"""The project's error family. Every message names the table, column, file or key at fault."""

from __future__ import annotations


class CdpError(Exception):
    """Base class: an error the user can act on, reported as one line by the CLI."""


class ConfigError(CdpError):
    """A configuration file, key or environment variable is wrong or missing."""


class EnvironmentProblem(CdpError):
    """Something the machine needs (Java, a jar, a path) is missing."""


class LakeError(CdpError):
    """A table cannot be read or written."""


class TableNotFoundError(LakeError):
    """The logical table has no Delta log at its path."""


class SchemaMismatchError(LakeError):
    """A write would change a table's schema and the caller did not ask to evolve it."""


class DataQualityError(CdpError):
    """A critical data-quality expectation failed."""


class IdentityResolutionError(CdpError):
    """Identity resolution hit a quality gate."""
