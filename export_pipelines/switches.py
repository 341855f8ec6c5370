"""On/off settings read from the environment, all read the same way.

A switch takes 1, true, yes or on and 0, false, no or off, in any case (spaces around them
ignored); unset or empty keeps its default. Anything else is refused, naming the variable and
the words it takes: a typo such as EXPORT_FAST_EXTRACT=flase must not leave a path on that the
operator meant to turn off. The code location refuses to load with a wrong value
(code_location.build_definitions) and the export-pipelines commands print it as one line
(code_location.environment_problems), so it is not found only by a run that reads it.
"""

from __future__ import annotations

import os

ON_WORDS = ("1", "true", "yes", "on")
OFF_WORDS = ("0", "false", "no", "off")

FAST_EXTRACT_ENV_VAR = "EXPORT_FAST_EXTRACT"
MAPPING_SHORTCUT_ENV_VAR = "EXPORT_MAPPING_SHORTCUT"
FORMAT_WHILE_EXTRACTING_ENV_VAR = "EXPORT_FORMAT_WHILE_EXTRACTING"
WRITE_BEHIND_ENV_VAR = "EXPORT_WRITE_BEHIND"
SFTP_LARGE_WRITES_ENV_VAR = "EXPORT_SFTP_LARGE_WRITES"
# 1 keeps every export's files in its download folder, 0 delivers to the connections; unset:
# on for the bundled demo config (its partner servers do not exist), off for any other.
REDIRECT_ENV_VAR = "EXPORT_REDIRECT_TO_DOWNLOAD"

SWITCHES = (
    FAST_EXTRACT_ENV_VAR,
    MAPPING_SHORTCUT_ENV_VAR,
    FORMAT_WHILE_EXTRACTING_ENV_VAR,
    WRITE_BEHIND_ENV_VAR,
    SFTP_LARGE_WRITES_ENV_VAR,
    REDIRECT_ENV_VAR,
)


def switch_from_environment(variable: str, default: bool = True) -> bool:
    """Whether $`variable` turns its switch on: `default` when it is unset or empty.

    Raises ValueError for a value that is none of ON_WORDS or OFF_WORDS, naming the variable,
    the value and the accepted words.
    """
    value = os.environ.get(variable, "").strip()
    word = value.lower()
    if not word:
        return default
    if word in ON_WORDS:
        return True
    if word in OFF_WORDS:
        return False
    raise ValueError(
        f"{variable}={value!r} is not a switch value: write {_either(ON_WORDS)} to turn it on, "
        f"{_either(OFF_WORDS)} to turn it off (any case), or leave it unset for its default"
    )


def _either(words: tuple[str, ...]) -> str:
    return f"{', '.join(words[:-1])} or {words[-1]}"


def switch_problems() -> list[str]:
    """One line for each switch of SWITCHES whose value switch_from_environment refuses."""
    problems = []
    for variable in SWITCHES:
        try:
            switch_from_environment(variable)
        except ValueError as error:
            problems.append(str(error))
    return problems
