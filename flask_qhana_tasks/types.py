"""Column types: timezone-aware UTC timestamps and JSON with nested change tracking."""

from __future__ import annotations

import math
import typing as t
import weakref
from datetime import datetime
from datetime import timezone

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import InstanceState
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.orm.attributes import flag_modified

#: Dialects whose timestamp columns hold no zone: values are stored as naive UTC.
_NAIVE_DIALECTS = frozenset({"sqlite", "mysql", "mariadb"})

#: Text without a length limit: MariaDB's and MySQL's TEXT ends at 64 KiB, which
#: a long task log outgrows.
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC :class:`~datetime.datetime`.

    Used as the per-row default of every timestamp column.
    """
    return datetime.now(timezone.utc)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that always comes back as a timezone-aware UTC datetime.

    The column is ``TIMESTAMP WITH TIME ZONE`` where the database has one. On
    databases that store no zone (SQLite, MariaDB, MySQL) the value is stored as
    naive UTC and marked as UTC again when it is read.

    A naive datetime given to the column is taken to be UTC already, which is what
    code written for :func:`datetime.datetime.utcnow` expects; an aware datetime in
    any zone is converted to UTC.
    """

    impl = sa.TIMESTAMP(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[t.Any]:
        # MariaDB's and MySQL's TIMESTAMP keeps whole seconds, converts values
        # by the session's time zone and ends in 2038: a DATETIME with
        # microseconds keeps naive UTC as it is given.
        if dialect.name in ("mysql", "mariadb"):
            return mysql.DATETIME(fsp=6)

        return self.impl_instance

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None

        if not isinstance(value, datetime):
            raise TypeError(
                f"A timestamp column takes a 'datetime', not {type(value).__name__!r}"
                f" ({value!r})."
            )

        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        else:
            value = value.astimezone(timezone.utc)

        if dialect.name in _NAIVE_DIALECTS:
            return value.replace(tzinfo=None)

        return value

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None

        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)

        return value.astimezone(timezone.utc)


class _Tracked:
    """Behaviour shared by the dict and list that track changes of a JSON value.

    Each container knows the container it sits in; the outermost one knows the
    mapped object and attribute it belongs to. A change anywhere in the tree
    walks up to the outermost container and flags the attribute as modified, so
    the session writes the whole value on the next flush.
    """

    _json_parent: _Tracked | None = None
    _json_owner: tuple[weakref.ref[t.Any], str] | None = None

    def _changed(self) -> None:
        node: _Tracked = self

        while node._json_parent is not None:
            node = node._json_parent

        if node._json_owner is None:
            return

        ref, key = node._json_owner
        obj = ref()

        if obj is not None:
            flag_modified(obj, key)

    def _track(self, value: t.Any) -> t.Any:
        """Return ``value`` ready to be stored inside this container.

        :raises TypeError: ``value`` is not a JSON value.
        :raises ValueError: ``value`` holds a float that JSON cannot represent.
        """
        check_json(value)
        return _track(value, parent=self)


def check_json(value: t.Any, path: str = "") -> None:
    """Check that ``value`` is made of JSON values only, and can be stored as such.

    JSON values are dicts with string keys, lists (and tuples, stored as lists),
    strings, finite numbers, booleans and ``None``.

    :param value: the value to check.
    :param path: where ``value`` sits in the outer value, for the error message.
    :raises TypeError: a part of ``value`` is of another type, or a dict key is
        not a string.
    :raises ValueError: a float is not finite.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return

    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"JSON cannot represent the number {value!r} at {path or 'the top'}."
            )

        return

    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"JSON object keys must be strings, got {type(key).__name__!r}"
                    f" ({key!r}) at {path or 'the top'}."
                )

            check_json(item, f"{path}[{key!r}]")

        return

    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_json(item, f"{path}[{index}]")

        return

    raise TypeError(
        f"Only JSON values can be stored, got {type(value).__name__!r} ({value!r})"
        f" at {path or 'the top'}."
    )


def _check_key(key: t.Any) -> str:
    if not isinstance(key, str):
        raise TypeError(
            f"JSON object keys must be strings, got {type(key).__name__!r} ({key!r})."
        )

    return key


def _track(value: t.Any, parent: _Tracked | None = None) -> t.Any:
    """Return ``value`` with every dict and list in it replaced by a tracked copy.

    Containers that are already tracked inside ``parent`` are kept as they are;
    scalars are returned unchanged.
    """
    if isinstance(value, _Tracked) and value._json_parent is parent is not None:
        return value

    if isinstance(value, dict):
        tracked_dict = TrackedDict()
        tracked_dict._json_parent = parent

        for key, item in value.items():
            dict.__setitem__(tracked_dict, key, _track(item, tracked_dict))

        return tracked_dict

    if isinstance(value, (list, tuple)):
        tracked_list = TrackedList()
        tracked_list._json_parent = parent
        list.extend(tracked_list, (_track(item, tracked_list) for item in value))
        return tracked_list

    return value


class TrackedDict(_Tracked, dict[t.Any, t.Any]):
    """A :class:`dict` inside a JSON column that reports its changes.

    Dicts and lists stored in it are copied into tracked containers, so that
    ``task.data["a"]["b"].append(1)`` is persisted on commit like
    ``task.data["a"] = 1``.
    """

    def __setitem__(self, key: t.Any, value: t.Any) -> None:
        dict.__setitem__(self, _check_key(key), self._track(value))
        self._changed()

    def __delitem__(self, key: t.Any) -> None:
        dict.__delitem__(self, key)
        self._changed()

    def setdefault(self, key: t.Any, default: t.Any = None) -> t.Any:
        if key not in self:
            self[key] = default

        return self[key]

    def update(self, *args: t.Any, **kwargs: t.Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            dict.__setitem__(self, _check_key(key), self._track(value))

        self._changed()

    def __ior__(self, other: t.Any) -> TrackedDict:  # type: ignore[misc]
        self.update(other)
        return self

    def pop(self, *args: t.Any) -> t.Any:
        result = dict.pop(self, *args)
        self._changed()
        return result

    def popitem(self) -> tuple[t.Any, t.Any]:
        result = dict.popitem(self)
        self._changed()
        return result

    def clear(self) -> None:
        dict.clear(self)
        self._changed()

    def __reduce_ex__(self, protocol: t.SupportsIndex) -> t.Any:
        # Pickled and copied as a plain dict: the owner is a weak reference.
        return (dict, (dict(self),))


class TrackedList(_Tracked, list[t.Any]):
    """A :class:`list` inside a JSON column that reports its changes."""

    def __setitem__(self, index: t.Any, value: t.Any) -> None:
        if isinstance(index, slice):
            value = [self._track(item) for item in value]
        else:
            value = self._track(value)

        list.__setitem__(self, index, value)
        self._changed()

    def __delitem__(self, index: t.Any) -> None:
        list.__delitem__(self, index)
        self._changed()

    def append(self, value: t.Any) -> None:
        list.append(self, self._track(value))
        self._changed()

    def extend(self, values: t.Iterable[t.Any]) -> None:
        list.extend(self, [self._track(item) for item in values])
        self._changed()

    def __iadd__(self, values: t.Iterable[t.Any]) -> TrackedList:  # type: ignore[misc]
        self.extend(values)
        return self

    def __imul__(self, count: t.SupportsIndex) -> TrackedList:
        list.__imul__(self, count)
        self._changed()
        return self

    def insert(self, index: t.SupportsIndex, value: t.Any) -> None:
        list.insert(self, index, self._track(value))
        self._changed()

    def pop(self, index: t.SupportsIndex = -1) -> t.Any:
        result = list.pop(self, index)
        self._changed()
        return result

    def remove(self, value: t.Any) -> None:
        list.remove(self, value)
        self._changed()

    def clear(self) -> None:
        list.clear(self)
        self._changed()

    def sort(self, **kwargs: t.Any) -> None:
        list.sort(self, **kwargs)
        self._changed()

    def reverse(self) -> None:
        list.reverse(self)
        self._changed()

    def __reduce_ex__(self, protocol: t.SupportsIndex) -> t.Any:
        return (list, (list(self),))


def _own(value: t.Any, state: InstanceState[t.Any], key: str) -> t.Any:
    """Return ``value`` tracked, its outermost container owned by ``state.obj()``."""
    value = _track(value)

    if isinstance(value, _Tracked):
        value._json_owner = (weakref.ref(state.obj()), key)

    return value


def track_json_changes(attribute: QueryableAttribute[t.Any]) -> None:
    """Track nested changes of the JSON value held by a mapped attribute.

    Values assigned to the attribute, and values loaded from the database, are
    turned into :class:`TrackedDict` and :class:`TrackedList` trees. Scalars (a
    JSON string, number, boolean or null) need no tracking and are kept as they
    are.

    :param attribute: the mapped attribute, for example ``ProcessingTask.data``.
    """
    key = attribute.key
    mapped_class = attribute.class_

    def on_set(
        target: InstanceState[t.Any], value: t.Any, oldvalue: t.Any, initiator: t.Any
    ) -> t.Any:
        try:
            check_json(value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{mapped_class.__name__}.{key}: {error}") from None

        return _own(value, target, key)

    def on_load(target: InstanceState[t.Any], *args: t.Any) -> None:
        if key in target.dict:
            target.dict[key] = _own(target.dict[key], target, key)

    def on_refresh(
        target: InstanceState[t.Any], context: t.Any, attrs: t.Iterable[str] | None
    ) -> None:
        if attrs is None or key in attrs:
            on_load(target)

    event.listen(attribute, "set", on_set, raw=True, retval=True)
    event.listen(mapped_class, "load", on_load, raw=True)
    event.listen(mapped_class, "refresh", on_refresh, raw=True)
    event.listen(mapped_class, "refresh_flush", on_refresh, raw=True)
