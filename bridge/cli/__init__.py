"""The ``jobs`` command line (also ``celery -A APP jobs ...``) and the metrics server.

One module per command group; :mod:`bridge.cli.main` assembles them.
"""
