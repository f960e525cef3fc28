"""TensorFlow/Keras backend: `plugin` decides (without importing TF), `adapter` does the work."""
