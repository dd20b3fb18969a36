"""galgen-cli: the `galgen` console script (Typer) over the galgen library."""

__version__ = "0.1.0"
