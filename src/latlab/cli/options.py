"""Options several commands share: the store and the log level, beside their variables."""

from __future__ import annotations

from typing import Annotated, Any

import typer

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage-url",
        metavar="URL",
        show_default=False,
        help="The store: sqlite+aiosqlite:///FILE, postgresql+asyncpg://…, mongodb://… "
        "[env LATLAB_STORAGE_URL; default sqlite+aiosqlite:///./latlab.db].",
    ),
]
LogLevelOption = Annotated[
    str | None,
    typer.Option(
        "--log-level",
        metavar="LEVEL",
        show_default=False,
        help="debug, info, warning, error or critical [env LATLAB_LOG_LEVEL; default info].",
    ),
]


def given(**options: Any) -> dict[str, Any]:
    """The options given on the command line; the rest come from the environment."""
    return {name: value for name, value in options.items() if value is not None}
