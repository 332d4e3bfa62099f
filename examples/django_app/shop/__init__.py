"""The shop's Django project. As Celery's Django guide says, the Celery app loads with it."""

from examples.django_app.shop.celery import app as celery_app

__all__ = ("celery_app",)
