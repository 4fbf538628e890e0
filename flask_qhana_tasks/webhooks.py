"""Find the webhooks to notify of a committed change of a task.

A receiver of the change signals of :mod:`flask_qhana_tasks.signals` looks up
the webhooks subscribed to the change with :func:`webhooks_for`, and hands each
to whatever delivers it, a Celery task for example. :doc:`/signals` shows the
whole pattern.
"""

from __future__ import annotations

from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit

from .models import TaskUpdateSubscription
from .models import WebhookRef

#: The events a webhook can subscribe to, one for each change signal: the
#: values of ``TaskUpdateSubscription.event_type``, and the ``event`` each
#: signal carries. A subscription without an event type hears of all three.
EVENTS: tuple[str, ...] = ("status", "steps", "details")


def webhooks_for(task_id: int, event: str) -> list[WebhookRef]:
    """Return the webhooks to notify of an event of a task, each once.

    Those are the webhooks of the task's subscriptions to ``event`` and of its
    subscriptions without an event type, in the order of their URLs. The
    query runs on the session of the extension's ``db``.

    :param task_id: the id of the task.
    :param event: one of :data:`EVENTS`.
    :raises ValueError: ``event`` is not one of :data:`EVENTS`.
    """
    if event not in EVENTS:
        raise ValueError(
            f"{event!r} is not a task event: use one of {', '.join(EVENTS)}."
        )

    return TaskUpdateSubscription.get_by_task_and_event(task_id, event)


def notification_url(webhook: WebhookRef, event: str) -> str:
    """Return the URL to ``POST`` to, to notify a webhook of an event.

    That is the webhook's URL with the query parameters ``source``, the URL of
    the task resource, and ``event``, added to those it has already. The QHAna
    plugin runner's consumers of task webhooks expect this request, with an
    empty body.

    :param webhook: the webhook, as :func:`webhooks_for` returns it.
    :param event: the event, one of :data:`EVENTS`.
    """
    parts = urlsplit(webhook.webhook_href)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [("source", webhook.task_href), ("event", event)]
    return parts._replace(query=urlencode(query)).geturl()
