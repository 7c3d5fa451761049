"""Prometheus exposition of a snapshot, the exporter server, and the Pushgateway client."""
