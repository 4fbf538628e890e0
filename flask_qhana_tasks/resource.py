"""The task-status resource: a blueprint that serves tasks as JSON.

With :data:`QHANA_TASKS_API` set, :meth:`QHAnaTasks.init_app
<flask_qhana_tasks.QHAnaTasks.init_app>` mounts :data:`blueprint` at
:data:`QHANA_TASKS_API_PREFIX`. ``GET <prefix>/<id>/`` answers with the task in
the QHAna plugin runner's task-status shape (see :func:`task_status`);
``POST`` takes the commands ``subscribe`` and ``unsubscribe`` for webhooks.
"""

from __future__ import annotations

import typing as t
from http import HTTPStatus

import sqlalchemy as sa
from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import request
from flask import Response
from flask import url_for
from flask.views import MethodView
from werkzeug.exceptions import BadRequest

from .models import _session
from .models import check_http_url
from .models import ProcessingTask
from .models import TaskFile
from .models import TaskUpdateSubscription

if t.TYPE_CHECKING:
    from .extension import QHAnaTasks

#: A callable the application provides that returns the URL of a result file.
OutputUrlResolver = t.Callable[[TaskFile], str]

#: The blueprint of the task-status resource. Its endpoint is
#: ``"qhana_tasks.task"``, with the argument ``task_id``.
blueprint = Blueprint("qhana_tasks", __name__)

#: The commands ``POST`` takes.
COMMANDS = ("subscribe", "unsubscribe")

#: The fields of a ``POST`` body. ``webhook_href`` is taken as another spelling
#: of ``webhookHref``, the name the QHAna plugin runner reads.
BODY_FIELDS = ("command", "event", "webhookHref", "webhook_href")


class BadRequestBody(ValueError):
    """A ``POST`` body the resource cannot act on; the message says why."""


def _number(value: float) -> float | int:
    """Return whole numbers as :class:`int`, as the plugin runner writes them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)

    return value


def _progress(task: ProcessingTask) -> dict[str, t.Any] | None:
    progress = task.progress

    if progress is None:
        return None

    shown: dict[str, t.Any] = {"value": _number(progress.value)}

    for key in ("start", "target"):
        value = getattr(progress, key)

        if value is not None:
            shown[key] = _number(value)

    if progress.unit is not None:
        shown["unit"] = progress.unit

    return shown


def _outputs(task: ProcessingTask, resolver: OutputUrlResolver | None) -> list[t.Any]:
    outputs = []

    for file in TaskFile.get_task_result_files(task):
        # The plugin runner's shape requires both; files without them stay out.
        if file.file_type is None or file.mimetype is None:
            continue

        if resolver is None:
            raise RuntimeError(
                f"Task {task.id} has the result file {file.file_name!r}, but no"
                " output URL resolver is registered to give its URL. Register one"
                " with the '@tasks.output_url_resolver' decorator."
            )

        href = resolver(file)

        if not isinstance(href, str):
            raise TypeError(
                "The output URL resolver must return a 'str', got"
                f" {type(href).__name__!r} ({href!r}) for the file"
                f" {file.file_name!r} of task {task.id}."
            )

        outputs.append(
            {
                "dataType": file.file_type,
                "contentType": file.mimetype,
                "href": href,
                "name": file.file_name,
            }
        )

    return outputs


def task_status(
    task: ProcessingTask, *, output_url_resolver: OutputUrlResolver | None = None
) -> dict[str, t.Any]:
    """Return a task in the QHAna plugin runner's task-status shape.

    The result is what ``GET <prefix>/<id>/`` answers with, as a dict ready to
    be serialised as JSON:

    - ``status``: :attr:`ProcessingTask.status`;
    - ``log``: the task's log;
    - ``progress``, only if the task reports progress: ``value``, and
      ``start``, ``target`` and ``unit`` where they are set;
    - ``steps``, only if the task has steps: ``href``, ``uiHref``, ``stepId``
      and ``cleared`` of each;
    - ``outputs``: for a finished task, ``dataType``, ``contentType``, ``href``
      and ``name`` of each result file that has a ``file_type`` and a
      ``mimetype``; an empty list while the task runs;
    - ``links``: first a ``"subscribe"`` link to the task's resource, then the
      task's own links, each with ``type`` and ``href``.

    Whole numbers are written without a fraction. Call it inside a request or
    with a ``SERVER_NAME`` configured, since the subscribe link is an external
    URL.

    :param task: the task.
    :param output_url_resolver: returns the URL of a result file; defaults to
        the one registered on the extension.
    :raises RuntimeError: the task has finished, has result files, and no
        output URL resolver is known.
    :raises TypeError: the resolver returned something other than a string.
    """
    if output_url_resolver is None:
        output_url_resolver = _extension().resolve_output_url

    status: dict[str, t.Any] = {"status": task.status, "log": task.task_log or ""}
    progress = _progress(task)

    if progress is not None:
        status["progress"] = progress

    if task.steps:
        status["steps"] = [
            {
                "href": step.href,
                "uiHref": step.ui_href,
                "stepId": step.step_id,
                "cleared": bool(step.cleared),
            }
            for step in task.steps
        ]

    if task.is_finished:
        status["outputs"] = _outputs(task, output_url_resolver)
    else:
        status["outputs"] = []

    status["links"] = [
        {"type": "subscribe", "href": task_url(task.id)},
        *({"type": link.type, "href": link.href} for link in task.links),
    ]
    return status


def task_url(task_id: int) -> str:
    """Return the external URL of a task's resource.

    :param task_id: the id of the task.
    """
    return url_for("qhana_tasks.task", task_id=task_id, _external=True)


def subscribe(task: ProcessingTask, webhook_href: str, event: str | None) -> None:
    """Subscribe a webhook to an event of a task, unless it is subscribed already.

    The subscription's ``task_href`` is the task's resource URL. The database
    refuses a second subscription of the webhook to the event; a concurrent
    request that subscribed it first counts as success. Commits the session
    when it adds the subscription.

    :param task: the task, loaded in the session.
    :param webhook_href: the URL of the webhook.
    :param event: the event; ``None`` for every event.
    :raises ValueError: a value is too long for its column or not allowed
        there.
    """
    session = _session()
    existing = TaskUpdateSubscription.get_by_task_and_subscriber(
        task, webhook_href, event
    )

    if existing:
        return

    try:
        with session.begin_nested():
            subscription = TaskUpdateSubscription(
                task, webhook_href, task_url(task.id), event
            )
            session.add(subscription)
    except sa.exc.IntegrityError:
        # Another request inserted the same subscription after the check.
        session.expire(task, ["subscriptions"])
    except (TypeError, ValueError):
        # The half-built subscription sits in the task's collection.
        session.expire(task, ["subscriptions"])
        raise

    session.commit()


def unsubscribe(task: ProcessingTask, webhook_href: str, event: str | None) -> int:
    """Delete the subscriptions of a webhook to an event of a task.

    As in the QHAna plugin runner, ``None`` selects the webhook's subscription
    to every event, not its subscriptions to single events. Commits the
    session.

    :param task: the task, loaded in the session.
    :param webhook_href: the URL of the webhook.
    :param event: the event; ``None`` for the subscription to every event.
    :return: how many subscriptions were deleted.
    """
    session = _session()
    found = TaskUpdateSubscription.get_by_task_and_subscriber(task, webhook_href, event)

    for subscription in found:
        session.delete(subscription)

    session.commit()
    return len(found)


def parse_command(body: t.Any) -> tuple[str, str, str | None]:
    """Check the body of a ``POST`` and return its command, webhook and event.

    :param body: the body as decoded from JSON.
    :raises BadRequestBody: the body is not a JSON object with a known
        ``command``, an absolute ``http`` or ``https`` ``webhookHref`` and an
        ``event`` that is a string or ``null``.
    """
    example = (
        ' such as {"command": "subscribe", "webhookHref":'
        ' "https://example.org/hook", "event": "status"}'
    )

    if not isinstance(body, dict):
        raise BadRequestBody(f"The request body must be a JSON object,{example}.")

    unknown = sorted(set(body) - set(BODY_FIELDS))

    if unknown:
        raise BadRequestBody(
            f"The request body has the unknown field {unknown[0]!r}. The fields"
            " are 'command', 'webhookHref' and 'event'."
        )

    command = body.get("command")

    if command not in COMMANDS:
        raise BadRequestBody(
            f"'command' must be 'subscribe' or 'unsubscribe', got {command!r}."
        )

    if "webhookHref" in body and "webhook_href" in body:
        raise BadRequestBody(
            "Give the webhook as 'webhookHref' or as 'webhook_href', not both."
        )

    name = "webhook_href" if "webhook_href" in body else "webhookHref"
    webhook_href = body.get(name)

    if not isinstance(webhook_href, str):
        raise BadRequestBody(
            f"{name!r} must be the webhook's URL as a string, got {webhook_href!r}."
        )

    try:
        check_http_url(webhook_href, repr(name))
    except ValueError as error:
        raise BadRequestBody(str(error)) from None

    event = body.get("event")

    if event is not None and not isinstance(event, str):
        raise BadRequestBody(
            f"'event' must be a string, or null for every event, got {event!r}."
        )

    return command, webhook_href, event


def _error(status: HTTPStatus, message: str) -> tuple[Response, int]:
    body = {"code": status.value, "status": status.phrase, "message": message}
    return jsonify(body), status.value


def _extension() -> QHAnaTasks:
    from .extension import EXTENSION_KEY

    return t.cast("QHAnaTasks", current_app.extensions[EXTENSION_KEY])


class _TaskView(MethodView):
    """The resource of one task."""

    def get(self, task_id: int) -> tuple[Response, int]:
        """Answer with the task's status, or 404 if there is no such task."""
        task = ProcessingTask.get_by_id(task_id)

        if task is None:
            return _error(HTTPStatus.NOT_FOUND, f"There is no task {task_id}.")

        return jsonify(task_status(task)), HTTPStatus.OK.value

    def post(self, task_id: int) -> tuple[Response, int]:
        """Run a ``subscribe`` or ``unsubscribe`` command; answer with the task's
        status."""
        task = ProcessingTask.get_by_id(task_id)

        if task is None:
            return _error(HTTPStatus.NOT_FOUND, f"There is no task {task_id}.")

        if not request.is_json:
            return _error(
                HTTPStatus.BAD_REQUEST,
                "The request body must be JSON, sent with the header"
                " 'Content-Type: application/json'.",
            )

        try:
            body = request.get_json()
        except BadRequest:
            return _error(HTTPStatus.BAD_REQUEST, "The request body is not valid JSON.")

        try:
            command, webhook_href, event = parse_command(body)

            if command == "subscribe":
                subscribe(task, webhook_href, event)
            else:
                unsubscribe(task, webhook_href, event)
        except ValueError as error:
            # Bad bodies, and values the models refuse, such as a webhook URL
            # longer than its column.
            return _error(HTTPStatus.BAD_REQUEST, str(error))

        return jsonify(task_status(task)), HTTPStatus.OK.value


blueprint.add_url_rule("/<int:task_id>/", view_func=_TaskView.as_view("task"))
