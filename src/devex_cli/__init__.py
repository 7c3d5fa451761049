"""devex: delivery truth for an engineering organisation."""

__version__ = "0.1.0"
