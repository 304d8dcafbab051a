"""Every ``latlab`` command's ``--help`` says each option's default, and the defaults it
names for settings are the settings' own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer

from latlab.cli.main import app
from latlab.settings import Settings

SAID_DEFAULT = re.compile(r"env (LATLAB_\w+); default ([^\]]+)\]")


def commands(command: Any, path: str) -> Iterator[tuple[str, Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from commands(sub, f"{path} {name}")
    else:
        yield path, command


def option_helps() -> Iterator[tuple[str, str]]:
    """(``latlab serve --port``, its help line) for every option that takes a value."""
    for path, command in commands(typer.main.get_command(app), "latlab"):
        context = command.context_class(command, info_name=path.rsplit(" ", 1)[-1])
        for param in command.params:
            if param.param_type_name == "option" and not param.is_flag:
                _, help_text = param.get_help_record(context)
                yield f"{path} {param.opts[0]}", help_text


def test_every_option_that_takes_a_value_says_its_default() -> None:
    """Found in review: serve, targets and the pipeline's services did not say theirs."""
    helps = list(option_helps())
    silent = [option for option, text in helps if "default" not in text and "required" not in text]
    assert len(helps) > 90
    assert silent == []


def test_the_defaults_said_for_settings_are_the_settings_defaults() -> None:
    fields = Settings.model_fields
    said = [m.groups() for _, text in option_helps() for m in SAID_DEFAULT.finditer(text)]
    assert len(said) >= 15
    for env, default in said:
        field = env.removeprefix("LATLAB_").lower()
        if field in fields and fields[field].default is not None:
            assert default == str(fields[field].default), env
