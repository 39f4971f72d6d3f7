"""Errors a user can fix, and how a command prints them: one line, `prog: error: <message>`, exit 2.

Every library error that is the user's to fix (a flag, a file, a key, a URL) derives from UserError as well as
from its usual class (ValueError, OSError, ...), so code that catches the usual class keeps working, and every
entry point (`run_classifier.py`, each `python -m transformers.X` demo) runs through `run_entry_point`, which
turns such an error into one readable line and keeps the traceback for everything else.
"""
import os
import sys


class UserError(Exception):
    """A problem the user can fix (a flag, a file, a folder), as opposed to a bug in this code.

    Entry points run through `run_entry_point` report it as one line, `prog: error: <message>`, and exit 2,
    argparse's convention; every other exception keeps its traceback. Library errors that are user errors
    (DataError, LoadingError, DownloadError, ...) derive from it as well as from their usual class.
    """


class BadValueError(UserError, ValueError):
    """A value the user gave cannot be used: a selector, a config file's content, a data line."""


DEBUG_ENV_VAR = "BERT_READ_DEBUG"  # =1: user errors show their traceback too


def run_entry_point(main, prog, argv=None):
    """Run main(argv) for `python prog ...`: a UserError (or a missing file) becomes one line and exit 2
    (or the error's own `exit_code`).

    With --debug among the arguments or BERT_READ_DEBUG=1 in the environment the traceback is shown instead.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        return main(argv)
    except (UserError, FileNotFoundError) as error:
        if "--debug" in argv or os.environ.get(DEBUG_ENV_VAR, "") not in ("", "0"):
            raise
        message = str(error) if isinstance(error, UserError) or not error.filename else \
            f"{error.filename}: {error.strerror}"
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", 2))  # 2 as argparse; a run that diverged says 3 (TrainingDiverged)
