"""The quickstart: run ``python -m examples.quickstart`` (see __main__.py)."""
