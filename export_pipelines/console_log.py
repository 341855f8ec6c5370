"""The console logger of every export job: Dagster's colored console logger, whose error lines can
leave out stack traces.

`export-pipelines run` and `rerun` execute in the shell's process and print each failed step's
cause themselves once the run is over (local_runs.describe); Dagster's console logger would first
print the same failure as pages of framework stack trace. With `stack_traces: false` an error line
keeps its first paragraph (which step failed, and how) and says where the whole text is. The run's
event log, which the UI and `export-pipelines log` show, always keeps everything.
"""

from __future__ import annotations

import logging

import dagster as dg
from dagster._utils.log import create_console_logger

# Where Dagster's serialized errors start their traces ("...\n\nStack Trace:\n  File ...").
TRACE_MARKERS = ("\nStack Trace:", "\nTraceback (most recent call last):")


class _WithoutStackTraces(logging.Filter):
    """Cuts an ERROR (or worse) record's message before its first stack trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            message = record.getMessage()
            cut = min((index for marker in TRACE_MARKERS if (index := message.find(marker)) >= 0), default=-1)
            if cut >= 0:
                record.msg = message[:cut].rstrip() + "  [stack trace in the run's log: export-pipelines log, or the UI]"
                record.args = ()
        return True


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, is_required=False, default_value="INFO", description="The logger's threshold."),
        "name": dg.Field(str, is_required=False, default_value="dagster", description="The logger's name."),
        "stack_traces": dg.Field(bool, is_required=False, default_value=True, description="false: error lines without stack traces."),
    },
    description="Dagster's colored console logger; stack_traces: false leaves stack traces to the run's log.",
)
def console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """A logging.Logger writing to the console as Dagster's default one does (same format and level)."""
    config = init_context.logger_config
    logger = create_console_logger(name=config["name"], level=config["log_level"].upper())
    if not config["stack_traces"]:
        for handler in logger.handlers:
            handler.addFilter(_WithoutStackTraces())
    return logger
