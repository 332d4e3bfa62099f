"""What runs inside ``celery worker`` and ``celery beat`` processes, and :mod:`~bridge.worker.install`,
the one place that installs it: the promoter of delayed jobs, the beat scheduler, rejected messages
and the fork guard. A backend's own worker pieces live in its folder and are installed from here
(``QueueBackend.install_worker``)."""
