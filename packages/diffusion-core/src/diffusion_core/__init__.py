"""diffusion-core (under construction)."""

__version__ = "0.1.0"
