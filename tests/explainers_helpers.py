"""Import the built-in explainers' helper functions for tests."""

from xai_core_explainers.grad_cam import resize_bilinear

__all__ = ["resize_bilinear"]
