"""SQS with guards, tombstones, locks and idempotency records in DynamoDB: no Redis. See __main__.py."""
