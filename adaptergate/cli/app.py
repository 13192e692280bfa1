"""The ``adaptergate`` command line: parse, call the package, exit.

Exit codes (see :mod:`adaptergate.errors`): 0 accepted, 1 rejected,
2 invalid input or usage, 3 evaluation failed. No traceback reaches the
console unless ``--debug`` (or ``ADAPTERGATE_DEBUG=1``) is given.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import typer

from adaptergate import __version__
from adaptergate.cli import calibrate, data, demo, gate, holdout, manifest, parity, publish, recipes, replay, review
from adaptergate.cli.common import _err_console, mark_run_start
from adaptergate.errors import AdaptergateError, ExitCode, exit_code_for

app = typer.Typer(
    help="adaptergate — gate per-tenant LoRA adapter promotion on held-out queries.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state: dict[str, Any] = {"debug": False}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks for errors (also: ADAPTERGATE_DEBUG=1)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    if debug:
        _state["debug"] = True


def version() -> None:
    """Print the adaptergate version."""
    typer.echo(__version__)


def _register_version(app: typer.Typer) -> None:
    app.command()(version)


# Each command module's ``register(app)`` adds its commands and sub-command groups
# to the one app. Registration order is the order of ``adaptergate --help``: typer
# lists the top-level commands in the order they were registered, then the groups
# in theirs. A new command group is a module with a ``register(app)``, added here.
_REGISTER = (
    gate.register,         # gate
    review.register,       # review
    holdout.register,      # holdout *
    replay.register,       # replay *
    manifest.register,     # manifest *, promote, rollback
    calibrate.register,    # calibrate
    _register_version,     # version
    demo.register,         # demo *
    data.register,         # data check
    recipes.register,      # recommend-cmd, recipes *
    publish.register,      # publish
    parity.register,       # parity
)
for _register in _REGISTER:
    _register(app)


# ------------------------------------------------------------------- main


def _print_error(exc: BaseException, code: int) -> None:
    """The one error printer: one line (and the details), secrets scrubbed, control
    characters shown rather than obeyed; the traceback only with --debug."""
    from adaptergate.trust import inert, scrub

    err = _err_console()

    def say(text: str) -> None:
        err.print(scrub(inert(text, keep_newlines=True)), markup=False, highlight=False)

    if isinstance(exc, AdaptergateError):
        say(f"adaptergate: error: {exc.message}")
        for line in exc.details:
            say(f"  {line}")
        total = getattr(exc, "total", None)
        if total and total > len(exc.details):
            say(f"  ... and {total - len(exc.details)} more")
    else:
        say(f"adaptergate: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
    if _state["debug"]:
        tb = getattr(exc, "traceback_text", None) or "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)
        )
        say(tb)


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """Exception classes of the click that typer runs on.

    Recent typer vendors click (``typer._click``); older typer uses click
    itself. Collect the class of that name from both, whichever exist.
    """
    found: set[type[BaseException]] = set()
    for probe in (typer.BadParameter, typer.Exit, typer.Abort):
        found.update(c for c in probe.__mro__ if c.__name__ == name)
    try:
        import click.exceptions as ce  # type: ignore[import-not-found]

        if hasattr(ce, name):
            found.add(getattr(ce, name))
    except ImportError:
        pass
    return tuple(found)


_EXIT = _click_classes("Exit")
_ABORT = _click_classes("Abort")
_CLICK_ERROR = _click_classes("ClickException")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point. Returns (and exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    mark_run_start(whole_process=argv is None)
    _state["debug"] = "--debug" in args or os.environ.get("ADAPTERGATE_DEBUG", "") not in ("", "0")
    command = typer.main.get_command(app)
    try:
        # Without standalone mode click *returns* the code of an Exit raised
        # inside a command (the verdict) instead of raising it.
        rv = command.main(args=args, prog_name="adaptergate", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except _EXIT as exc:
        code = int(getattr(exc, "exit_code", 0) or 0)
    except _ABORT:
        _err_console().print("adaptergate: aborted", markup=False)
        code = 130
    except _CLICK_ERROR as exc:  # usage errors: bad option, missing option, bad value
        exc.show()  # type: ignore[attr-defined]
        code = int(ExitCode.INVALID_INPUT)
    except BrokenPipeError:
        code = 0
    except KeyboardInterrupt:
        code = 130
    except BaseException as exc:  # noqa: BLE001 - the one place errors become exit codes
        if isinstance(exc, SystemExit):
            code = exc.code if isinstance(exc.code, int) else 1
        else:
            code = int(exit_code_for(exc))
            _print_error(exc, code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass
    if argv is None:
        # Every file we write is complete and fsynced by now. Skip interpreter
        # teardown: freeing a million-query holdout object by object takes
        # seconds and changes nothing.
        os._exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()
