"""Keyhouse: a self-hosted server that speaks the Nuki Web API."""

__version__ = "0.1.0"
