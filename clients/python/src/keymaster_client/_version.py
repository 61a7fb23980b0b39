"""The package version, in one place for the metadata and the User-Agent."""

__version__ = "0.2.0"
