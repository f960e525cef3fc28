"""Test helpers for backend authors: the conformance kit and cross-framework twin models."""

from .conformance import CHECKS, AdapterConformance, Case, check_adapter

__all__ = ["CHECKS", "AdapterConformance", "Case", "check_adapter"]
