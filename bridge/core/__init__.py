"""Foundations every room shares, with no broker client: the backend contract and its registry,
which Bridge an app has, job ids, input validation, repeat timetables, secret redaction."""
