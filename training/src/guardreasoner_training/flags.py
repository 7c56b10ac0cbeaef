"""Command-line flags derived from config dataclasses, as trl's parser (``HfArgumentParser``) derives them.

Each field gives ``--field-name`` (``--x/--no-x`` for a boolean), its type, its default and ``metadata["help"]``;
``metadata["flag"]`` names the flag otherwise and ``metadata["aliases"]`` adds more names. A default or a help text
is then written once, in the config; :func:`flag_field` declares such a field.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer


def flag_field(default: Any, help: str, **metadata: Any) -> Any:
    """A config field that :func:`config_flags` can make a flag: its default, its help, and ``flag``/``aliases``."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def config_flags(
    *sources: tuple[type, tuple[str, ...]], help_values: dict[str, Any] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the named fields of config dataclasses to a command as flags; the command gets their values in ``fields``.

    ``--field-name`` or the field's ``flag`` (``--x/--no-x`` for booleans) plus its ``aliases``, its type, default
    and help; ``help_values`` fill the ``{name}`` placeholders of the helps (a value that depends on the command).
    """
    derived: list[inspect.Parameter] = []
    for source, names in sources:
        hints = typing.get_type_hints(source)
        fields = {f.name: f for f in dataclasses.fields(source)}
        for name in names:
            field = fields[name]
            flags = [
                field.metadata.get("flag", "--" + name.replace("_", "-")),
                *field.metadata.get("aliases", []),
            ]
            if hints[name] in (bool, bool | None):
                flags = [f"{flag}/--no-{flag[2:]}" for flag in flags]
            option = typer.Option(*flags, help=field.metadata["help"].format_map(help_values or {}))
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
