"""The embedded Valkey server of ``BRIDGE_HOME`` and the backend that runs the Redis code on it."""
