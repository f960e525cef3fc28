"""Forward-only backend for ONNX models (onnxruntime)."""
