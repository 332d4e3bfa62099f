"""Everything that speaks Amazon SQS: the backend, its Celery broker settings, delay hops, the
visibility heartbeat and FIFO retries in workers, queue administration and IAM policies."""
