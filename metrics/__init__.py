"""Built-in evaluation metrics, installed as `xai_core_metrics`, each registered by entry point."""
