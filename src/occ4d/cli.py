"""``occ4d <command>``: a thin dispatcher; each command lives in ``occ4d.commands.<name>``.

Command functions take typed keyword arguments; tyro turns their signatures and docstrings into
the command line. Command modules import heavy libraries inside their functions so that
``occ4d --help`` stays fast.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys

# name -> "module:function". Each entry is one command of the CLI.
COMMANDS: dict[str, str] = {
    "demo": "occ4d.commands.demo:demo",
    "synth": "occ4d.commands.synth:synth",
    "eval": "occ4d.commands.eval:evaluate",
    "convert": "occ4d.commands.convert:convert",
    "info": "occ4d.commands.info:info",
    "render": "occ4d.commands.render:render",
    "report": "occ4d.commands.report:report",
    "train": "occ4d.commands.train:train",
    "generate": "occ4d.commands.generate:generate",
    "forecast": "occ4d.commands.forecast:forecast",
    "perceive": "occ4d.commands.perceive:perceive",
}


def _load(spec: str):
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> None:
    """Run one command. From the console (``argv`` None) bad input (a ``DataError``, or an OSError
    about a path: missing, unwritable, read-only, disk full) ends with one line on stderr naming
    the file and the problem and exit status 1, not a traceback; called with ``argv`` (tests,
    scripts) the exception propagates to the caller."""
    import tyro

    console = argv is None
    argv = sys.argv[1:] if argv is None else argv
    # Only the chosen command's module is imported; --help lists all of them.
    if argv and argv[0] in COMMANDS:
        funcs = {argv[0]: _load(COMMANDS[argv[0]])}
    else:
        funcs = {name: _load(spec) for name, spec in COMMANDS.items()}
    try:
        tyro.extras.subcommand_cli_from_dict(funcs, args=argv, prog="occ4d")
    except Exception as e:
        message = _user_error(e) if console else None
        if message is None:
            raise
        print(f"occ4d {argv[0]}: error: {message}", file=sys.stderr)
        raise SystemExit(1) from None


# OSErrors that say the user's path cannot be used as given, not that occ4d is wrong.
_PATH_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG}


def _user_error(e: BaseException) -> str | None:
    """The one-line message of an exception caused by bad input, or None for anything else
    (a programming error keeps its traceback)."""
    from occ4d.core.errors import DataError

    if isinstance(e, DataError):
        return str(e)
    if isinstance(e, OSError) and e.errno in _PATH_ERRNOS:
        problem = e.strerror or os.strerror(e.errno)
        if e.filename is None:
            return problem
        other = f" -> {e.filename2}" if e.filename2 is not None else ""
        return f"{e.filename}{other}: {problem}"
    return None


if __name__ == "__main__":
    main()
