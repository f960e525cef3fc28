"""Plain NumPy functions as models (`xai_core.FunctionModel(fn, framework="numpy")`)."""
