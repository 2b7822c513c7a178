"""recvault's benchmarks against its baselines, measured in one run: `python -m bench`."""
