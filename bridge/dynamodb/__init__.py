"""DynamoDB as the bridge's shared store (``GUARD_STORE=dynamodb``, ``LOCK_BACKEND=dynamodb``)."""
