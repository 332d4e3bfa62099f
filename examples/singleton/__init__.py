"""A singleton maintenance job and an idempotent payment capture: see __main__.py."""
