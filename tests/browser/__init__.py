"""Browser tests of the guest page.

A package, so its conftest.py does not take the name `conftest` from tests/conftest.py.
"""
