"""The add script's call for one job of a task, packed as far as it can be before the job is known.

Why this exists: a single ``queue.add`` is one round trip, and the Python around it cost
as much again (``bench/README.md``, "Where a single add's time goes"). The general path
(:meth:`bridge.redis.backend.RedisBackend.enqueue`) builds a JobRequest, an Envelope and the
add script's words for any mix of options, on every add. The common add has none of them:
no delay, its task's own route, no priority, flat data. For that add everything but the job
id, the message and the producer's minute is the same every time, so an :class:`AddPlan`
keeps it packed, per task and per thread (the message template is per thread, see
:mod:`bridge.redis.message`), and an add fills in the rest.

A test compares what this path and the general path write, field by field.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.core.ids import keyed_id_seed
from bridge.redis.message import PAYLOAD, Template
from bridge.redis.wire import bulk

__all__ = ["AddPlan"]


@dataclass(frozen=True)
class AddPlan:
    """One task's single add with no options, packed but for the job id, message and minute."""

    name: str
    queue: str
    template: Template
    id_seed: bytes  # keyed_id's seed for this task's name
    head: bytes  # the count of words and ``EVALSHA <sha> 0 <prefix>``
    keyed: bytes  # the words between the job id and the message: a job with a key ...
    unkeyed: bytes  # ... and one without (no guard)
    tail: bytes  # the words after the message

    @classmethod
    def of(cls, name: str, template: Template, add_head: bytes, guard_ttl_ms: int) -> AddPlan:
        """The plan of ``name``'s adds, from its message template and the add call's head.

        ``add_head`` is ``EVALSHA <sha> 0 <prefix>`` packed; the words follow the add script's
        ARGV (see ``ADD`` in :mod:`bridge.redis.scripts`): the minute, then the job's id,
        queue, guard TTL, delay (0), track (0), key (only a delayed job carries it: ""), the
        count of command words, and the commands with the message in its place.
        """
        before: list[bytes] = []
        after: list[bytes] = []
        words = before
        for command, key, value in template.commands:
            words += [bulk(command.encode()), bulk(key.encode())]
            if value is PAYLOAD:
                words = after
            else:
                words.append(bulk(str(value).encode()))
        if words is before:  # pragma: no cover - a template always carries its message
            raise ValueError(f"the message template of {name!r} has no message")
        count = 3 * len(template.commands)

        def middle(ttl_ms: int) -> bytes:
            job = (template.queue.encode(), b"%d" % ttl_ms, b"0", b"0", b"", b"%d" % count)
            return b"".join(bulk(word) for word in job) + b"".join(before)

        return cls(
            name=name,
            queue=template.queue,
            template=template,
            id_seed=keyed_id_seed(name),
            head=b"*%d\r\n" % (3 + 2 + 7 + count) + add_head,
            keyed=middle(guard_ttl_ms),
            unkeyed=middle(0),
            tail=b"".join(after),
        )

    def pack(self, minute: bytes, job_id: str, keyed: bool, message: bytes) -> bytes:
        """The whole call for one job; ``minute`` is packed (a bulk string) already."""
        return b"".join(
            (
                self.head,
                minute,
                bulk(job_id.encode()),
                self.keyed if keyed else self.unkeyed,
                b"$%d\r\n" % len(message),
                message,
                b"\r\n",
                self.tail,
            )
        )
