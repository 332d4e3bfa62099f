from django.db import models


class Order(models.Model):
    """An order; a job confirms it once the transaction that created it has committed."""

    item = models.CharField(max_length=100)
    confirmed = models.BooleanField(default=False)
