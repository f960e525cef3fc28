"""PaddlePaddle backend: `plugin` decides (without importing paddle), `adapter` does the work."""
