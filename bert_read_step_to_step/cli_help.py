"""How the scripts' --help shows defaults: one formatter for run_classifier.py and the reinit sweep.

argparse's ArgumentDefaultsHelpFormatter appends "(default: X)" to every flag with a help text. That is what
a reader needs to know what a run did without being told, except where there is nothing to show: a required
flag, or a default of None or "" (whose meaning, "the model's own" or "computed", the help text says in words).
"""
import argparse


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--learning_rate 5e-05 -> "peak AdamW learning rate (default: 5e-05)"; --config_name "" -> no suffix."""

    def _get_help_string(self, action):
        if action.required or action.default is None or action.default == "":
            return action.help
        return super()._get_help_string(action)
