"""The views of one snapshot: JSON (`json.py`), terminal tables (`tables.py`) and Prometheus
exposition (`prometheus.py`, also served by metrics/exporter.py)."""
