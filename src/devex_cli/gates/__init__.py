"""One module per gate."""
