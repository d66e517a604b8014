"""For whoever runs Gantry: Prometheus metrics, readiness, Django system checks, the page cache generation."""
