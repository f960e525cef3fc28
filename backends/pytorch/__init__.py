"""PyTorch backend: `plugin` decides (without importing torch), `adapter` does the work."""
