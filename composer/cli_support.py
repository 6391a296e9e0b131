"""What every command shares: bad input answered in one line (exit 2), other failures in one
line (exit 1), and option parsing helpers."""

from __future__ import annotations

import functools
import logging
import os
import sys

import click

from composer.errors import InputError

log = logging.getLogger("composer")


def handle_errors(func):
    """Turn bad-input exceptions into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from composer.errors import bad_input_types

        try:
            return func(*args, **kwargs)
        except bad_input_types() as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except (PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError) as error:
            log.debug("a path the user gave", exc_info=True)
            click.echo(f"error: {path_error(error)}", err=True)  # where the user asked us to read or write
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except Exception as error:  # anything else is our bug or the machine's
            log.debug("unexpected error", exc_info=True)
            click.echo(f"error: {type(error).__name__}: {error} (run with -vv for details)", err=True)
            if os.environ.get("COMPOSER_DEBUG"):
                raise
            sys.exit(1)

    return wrapper


class _Seed(click.ParamType):
    """Every --seed: a whole number in 0..2^63-1, the range batch rows and the samplers take."""

    name = "seed"

    def convert(self, value, param, ctx):
        try:
            seed = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if not 0 <= seed < 2**63:
            self.fail(f"{seed} is outside 0..2^63-1", param, ctx)
        return seed


SEED = _Seed()


def path_error(error: OSError) -> str:
    """One line for an OS error on a path: the path the user named (a temporary or lock file
    beside an output is named by its folder) and what is wrong with it."""
    from pathlib import Path

    path = Path(error.filename) if error.filename else None
    if path is not None and path.name.startswith("."):  # our .NAME.xxxx temporary or .NAME.lock file
        path = path.parent
    where = f"{path}: " if path is not None else ""
    if isinstance(error, PermissionError):
        return f"{where}permission denied"
    if isinstance(error, FileExistsError):
        return f"{where}already exists and is not a folder"
    if isinstance(error, IsADirectoryError):
        return f"{where}is a folder; give a file name"
    return f"{where}a file stands where a folder is needed on this path"


def writable_file(path: str, option: str, *, inputs: dict[str, str | None] | None = None,
                  suffixes: tuple[str, ...] | None = None, what: str = "") -> None:
    """InputError unless `path` can be written as a file: not a folder (nor a name ending in
    "/"), its folder not a file, not one of the command's `inputs` (option -> path: the file it
    reads), and, with `suffixes`, named as `what` is (".json" for a plan)."""
    from pathlib import Path

    target = Path(path)
    if target.is_dir() or str(path).endswith(("/", os.sep)):
        raise InputError(f"{option} {path}: is a folder; give a file name")
    if suffixes and target.suffix.lower() not in suffixes:
        raise InputError(f"{option} {path}: {what or 'the file'} is written as {' or '.join(suffixes)}; "
                         f"name it so (e.g. {target.with_suffix(suffixes[0]).name})")
    for other, source in (inputs or {}).items():
        if source and target.exists() and Path(source).exists() and os.path.samefile(target, source):
            raise InputError(f"{option} {path}: is the file {other} reads; give another name")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{option} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK):
                raise InputError(f"{option} {path}: {parent} is not writable")
            break


def int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: expected comma-separated integers") from None


def echo_originality(output, report: dict) -> None:
    """One line when a render came close to what its model learnt (it is written all the same)."""
    block = report.get("originality") or {}
    if block.get("flags"):
        click.echo(f"{output}: close to training data: {block['flags'][0]}"
                   + (f" (+{len(block['flags']) - 1} more in report.json)" if len(block["flags"]) > 1 else ""),
                   err=True)


KEY_KEPT_SCORE = 0.3  # mir_eval's weighted key score: 1 the same key, 0.5 a fifth away, 0.3 its relative


def echo_key_change(output, report: dict) -> None:
    """One line when a restyle's output reads in another key than its input (scored as
    `composer evaluate` scores a render against its plan, the input's analysed plan here): the
    bundled codec does not yet carry the pitch of recordings (the key of 4 of 12 held-out
    clips survives its round trip), and the user should hear that from us, not find it."""
    key = (report.get("metrics") or {}).get("key") or {}
    if key.get("score") is not None and key["score"] < KEY_KEPT_SCORE:
        click.echo(f"{output}: the output's key reads {key.get('estimated')}, the input's {key.get('planned')} "
                   "(a codec that has not learnt the pitch of recordings moves it: README, \"Recorded music\")",
                   err=True)
