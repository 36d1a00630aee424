"""Sluice: a self-hosted engine for customer-automation flows."""

__version__ = "0.1.0"
