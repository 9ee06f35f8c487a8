"""The package's version, in a leaf module so that any module can name it without
importing the top-level package (which would be an import cycle)."""

__version__ = "0.1.0"
