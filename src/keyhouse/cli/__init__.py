"""The keyhouse command."""
