"""The version of cnnlab (one place; the package and the records read it)."""

__version__ = "0.1.0"
