"""Sphinx configuration of the flask-qhana-tasks documentation.

The build needs no network: no intersphinx, no theme to download.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import typing as t

import sqlalchemy as sa
from sphinx.application import Sphinx

# -- Project ----------------------------------------------------------------

project = "flask-qhana-tasks"
copyright = "2026 The flask-qhana-tasks authors"
release = importlib.metadata.version("flask-qhana-tasks")
version = ".".join(release.split(".")[:2])

# -- General ----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinx_click",
]

exclude_patterns = ["_build"]

# Unresolved references to Flask, SQLAlchemy and the standard library stay plain
# text: without intersphinx there is nothing to resolve them against.
nitpicky = False

# -- Autodoc ----------------------------------------------------------------

autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True


def _model_default(cls: type[t.Any], field: dataclasses.Field[t.Any]) -> str:
    """Return what a model's constructor argument defaults to, as source text.

    SQLAlchemy's dataclass constructors show a sentinel where the column's own
    default applies; the page shows that default instead.
    """
    if field.default_factory is not dataclasses.MISSING:
        factory = field.default_factory
        return {dict: "{}", list: "[]"}.get(factory, f"{factory.__name__}()")

    prop = cls.__mapper__.attrs[field.name]

    if isinstance(prop, sa.orm.RelationshipProperty):
        return "[]"

    default = prop.columns[0].default

    if default is not None and default.is_scalar:
        return repr(default.arg)

    if field.default is None or default is None:
        return "None"

    return "..."


def _model_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: t.Any,
    options: t.Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """Show the defaults of a mapped dataclass's constructor arguments."""
    if what != "class" or not hasattr(obj, "__mapper__"):
        return None

    if not dataclasses.is_dataclass(obj):
        return None

    parameters = inspect.signature(obj).parameters
    parts = []

    for field in dataclasses.fields(obj):
        if not field.init or field.name not in parameters:
            continue

        if parameters[field.name].default is inspect.Parameter.empty:
            parts.append(field.name)
        else:
            parts.append(f"{field.name}={_model_default(obj, field)}")

    return f"({', '.join(parts)})", return_annotation


def _model_getter_rtype(
    app: Sphinx, what: str, name: str, obj: t.Any, options: t.Any, lines: list[str]
) -> None:
    """Name the model class as the return type of ``get_by_id``.

    The method is annotated with a private type variable bound to the class it
    is called on, which reads badly on the page.
    """
    if what == "method" and name.endswith(".get_by_id"):
        owner = name.rpartition(".")[0]
        lines.append(f":rtype: ~{owner} | None")


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-signature", _model_signature)
    app.connect("autodoc-process-docstring", _model_getter_rtype)


# -- HTML -------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"flask-qhana-tasks {release}"
html_theme_options = {
    "description": "Durable records of long-running tasks for Flask.",
    "show_powered_by": False,
}
