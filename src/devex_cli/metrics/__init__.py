"""The exporter server (serving views/prometheus.py) and the Pushgateway client."""
