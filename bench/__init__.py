"""Benchmarks of lift-asgi: ``python -m bench`` runs them all and writes bench/RESULTS.md."""
