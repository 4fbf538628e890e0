"""Notify the webhooks subscribed to a task of its committed changes, with Celery.

Each change signal enqueues one Celery task per subscribed webhook, which
``POST``\\ s to the webhook with ``source`` (the task resource's URL) and
``event`` (``status``, ``steps`` or ``details``) as query parameters. Register
it in the application factory, after the extension::

    from . import webhooks

    def create_app():
        ...
        tasks.init_app(app)
        webhooks.init_app(app)
        return app
"""

from __future__ import annotations

import typing as t
import urllib.request

from celery import shared_task
from flask import Flask

from flask_qhana_tasks.signals import CHANGE_SIGNALS
from flask_qhana_tasks.webhooks import notification_url
from flask_qhana_tasks.webhooks import webhooks_for


@shared_task(
    autoretry_for=(OSError,), retry_backoff=True, max_retries=5, ignore_result=True
)
def call_webhook(url: str) -> None:
    """Send the notification: a ``POST`` with an empty body.

    An HTTP error status raises an :class:`OSError`, which Celery retries.
    """
    request = urllib.request.Request(url, data=b"", method="POST")

    with urllib.request.urlopen(request, timeout=10):
        pass


def notify_webhooks(app: Flask, *, task_id: int, event: str, **extra: t.Any) -> None:
    """Enqueue a call of each webhook subscribed to a committed change."""
    for webhook in webhooks_for(task_id, event):
        call_webhook.delay(notification_url(webhook, event))


def init_app(app: Flask) -> None:
    """Notify webhooks of the changes of the tasks of ``app``."""
    for signal in CHANGE_SIGNALS.values():
        signal.connect(notify_webhooks, sender=app)
