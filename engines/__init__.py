"""Built-in engines of `explain_dataset`, installed as `xai_core_engines`."""
