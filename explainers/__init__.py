"""Built-in explainers, installed as `xai_core_explainers`, each registered by entry point."""
