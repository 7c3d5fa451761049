"""One module per outside system, each returning plain typed records."""
