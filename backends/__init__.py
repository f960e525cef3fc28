"""Built-in backends, installed as `xai_core_backends`; each registered through an entry point."""
