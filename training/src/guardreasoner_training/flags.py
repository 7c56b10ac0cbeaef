"""Command-line flags derived from config dataclasses, as trl's parser (``HfArgumentParser``) derives them.

Each field gives ``--field-name`` (``--x/--no-x`` for a boolean), its type, its default and ``metadata["help"]``;
``metadata["aliases"]`` adds more names. A default or a help text is then written once, in the config.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer


def config_flags(
    *sources: tuple[type, tuple[str, ...]],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the named fields of config dataclasses to a command as flags; the command gets their values in ``fields``.

    ``--field-name`` (``--x/--no-x`` for booleans) plus the field's ``aliases``, its type, default and help.
    """
    derived: list[inspect.Parameter] = []
    for source, names in sources:
        hints = typing.get_type_hints(source)
        fields = {f.name: f for f in dataclasses.fields(source)}
        for name in names:
            field = fields[name]
            flags = ["--" + name.replace("_", "-"), *field.metadata.get("aliases", [])]
            if hints[name] is bool:
                flags = [f"{flag}/--no-{flag[2:]}" for flag in flags]
            option = typer.Option(*flags, help=field.metadata["help"])
            derived.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=field.default,
                    annotation=Annotated[hints[name], option],
                )
            )

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.name != "fields"
        ]

        def run(**kwargs: Any) -> Any:
            fields = {p.name: kwargs.pop(p.name) for p in derived}
            return command(**kwargs, fields=fields)

        run.__name__, run.__doc__ = command.__name__, command.__doc__
        run.__signature__ = inspect.Signature([*own, *derived])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in [*own, *derived]}
        return run

    return decorate
