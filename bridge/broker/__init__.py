"""Any other broker Celery supports (RabbitMQ first), through Celery's own producer.

The broker only carries messages; what it cannot do lives in the guard store
(``REDIS_URL``, else the embedded server): the dedupe guard, delayed jobs until
they are due, repeats.
"""
