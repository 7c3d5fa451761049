"""One module per `devex` command: parse the flags, call one function of the core, render.

`cli.py` registers them. Each is imported when the CLI starts, so each imports its heavy modules
(HTTP, YAML, templates, Prometheus, git) inside its functions.
"""
