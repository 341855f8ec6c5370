"""Mail about finished runs: failures to the administrators, successes to recipients and the owner.

Run-status sensors, not steps of the export: a mail server that is down shows up as a
warning on the sensor's tick, and the export's own run stays as it was.
"""

from __future__ import annotations

import datetime as dt
import re
import smtplib
from collections.abc import Mapping

import dagster as dg
from pydantic import Field

from export_pipelines.automation.mail import Mail, send_mail
from export_pipelines.automation.windows import range_from_tags
from export_pipelines.naming import FAILURE_MAIL_SENSOR, SUCCESS_MAIL_SENSOR, asset_key_for, export_names_of_assets
from export_pipelines.spec.connections import MissingSecretError, SmtpConnection
from export_pipelines.spec.export import EMAIL_PATTERN, ExportSpec
from export_pipelines.spec.plan import ExportPlan

SUBJECT_PREFIX = "[export_pipelines]"


class NotificationSettings(dg.ConfigurableResource):
    """What notification mails link to.

    Args:
        webserver_base_url: The Dagster UI as people reach it; failure mails link to the run there.
    """

    webserver_base_url: str = Field(default="http://127.0.0.1:3000", description="Base URL of the Dagster UI.")


def mail_connection_name(spec: ExportSpec, connections: Mapping[str, object]) -> str | None:
    """The smtp connection an export's mail goes through: `notify.via`, else the only one there is."""
    if spec.notify is not None and spec.notify.via is not None:
        return spec.notify.via
    smtp = [name for name, connection in connections.items() if isinstance(connection, SmtpConnection)]
    return smtp[0] if len(smtp) == 1 else None


def success_recipients(spec: ExportSpec) -> tuple[str, ...]:
    """Antavo mails the export's creator too: the owner, when it is an address."""
    recipients = list(spec.notify.on_success) if spec.notify else []
    if spec.owner and re.match(EMAIL_PATTERN, spec.owner) and spec.owner not in recipients:
        recipients.append(spec.owner)
    return tuple(recipients)


def failure_recipients(spec: ExportSpec) -> tuple[str, ...]:
    return tuple(spec.notify.on_failure) if spec.notify else ()


def window_text(tags: Mapping[str, str]) -> str:
    key_range = range_from_tags(tags)
    if key_range is None:
        return "snapshot"
    return key_range.start if key_range.start == key_range.end else f"{key_range.start} .. {key_range.end}"


def run_url(settings: NotificationSettings, run_id: str) -> str:
    return f"{settings.webserver_base_url.rstrip('/')}/runs/{run_id}"


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "unknown"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# Dagster's own wrappers around an op's exception: "Error occurred while executing op ...", and
# "Exceeded max_retries of N" when a retry policy gave up. The cause is the news.
_WRAPPERS = {"DagsterExecutionStepExecutionError", "RetryRequested", "RetryRequestedFromPolicy"}


def root_cause(failure) -> str:
    """What went wrong in a failed step (its StepFailureData): a dg.Failure's own description,
    else the first exception under Dagster's wrappers."""
    if failure.user_failure_data is not None and failure.user_failure_data.description:
        return failure.user_failure_data.description.strip()
    error = failure.error
    while error.cause is not None and error.cls_name in _WRAPPERS:
        error = error.cause
    return error.message.strip()


def step_errors(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """Each failed step of a run with what went wrong, for mails and the execution log."""
    return [
        (entry.step_key, root_cause(entry.dagster_event.step_failure_data))
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        if entry.dagster_event and entry.dagster_event.step_failure_data and entry.dagster_event.step_failure_data.error
    ]


def run_failure_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Why the run itself failed, when no step said (its process was killed, it could not start)."""
    return [entry.message for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE) if entry.message]


def failure_mail(plan: ExportPlan, instance: dg.DagsterInstance, run: dg.DagsterRun, settings: NotificationSettings) -> Mail:
    record = instance.get_run_record_by_id(run.run_id)
    steps = [f"- step {step}: {error}" for step, error in step_errors(instance, run.run_id)]
    if not steps:
        steps = [f"- run: {message}" for message in run_failure_messages(instance, run.run_id)] or ["- run: failed (no step reported an error)"]
    window = window_text(run.tags)
    body = "\n".join(
        [
            f"The export {plan.name} ({plan.model_name} to {plan.spec.target_label}) failed.",
            "",
            f"Window:   {window}",
            f"Started:  {_when(record.start_time if record else None)}",
            f"Failed:   {_when(record.end_time if record else None)}",
            f"Run:      {run_url(settings, run.run_id)}",
            "",
            "What failed:",
            *steps,
            "",
            "Re-execute the run from the failed step in the UI, or: export-pipelines rerun " + plan.name + " --failed-only",
        ]
    )
    return Mail(f"{SUBJECT_PREFIX} FAILED: {plan.name} ({window})", failure_recipients(plan.spec), body)


def success_mail(plan: ExportPlan, instance: dg.DagsterInstance, run: dg.DagsterRun, settings: NotificationSettings) -> Mail | None:
    records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    materializations = [
        r.event_log_entry.asset_materialization
        for r in records
        if r.event_log_entry.asset_materialization and r.event_log_entry.asset_materialization.asset_key == asset_key_for(plan.name)
    ]
    if not materializations:
        return None
    metadata = {key: value.value for key, value in materializations[-1].metadata.items()}
    urls = metadata.get("download_urls") or []
    lines = [
        f"The export {plan.name} delivered {metadata.get('rows_written', 0)} rows.",
        "",
        f"Window:   {window_text(run.tags)}",
        f"Target:   {metadata.get('target', plan.spec.target_label)}",
        f"Location: {metadata.get('location', '')}",
        f"Run:      {run_url(settings, run.run_id)}",
        "",
        "Files:",
    ]
    files_table = metadata.get("files")
    for record in getattr(files_table, "records", []):
        data = record.data
        lines.append(f"- {data['name']}: {data['rows']} rows, {data['bytes']} bytes, sha256 {data['sha256']}")
    if urls:
        lines += ["", "Download links:", *(f"- {url}" for url in urls)]
    if metadata.get("rows_rejected"):
        lines += ["", f"{metadata['rows_rejected']} row(s) were skipped; see {metadata.get('rejected_file')}"]
    subject = f"{SUBJECT_PREFIX} {plan.name}: {metadata.get('rows_written', 0)} rows delivered ({window_text(run.tags)})"
    return Mail(subject, success_recipients(plan.spec), "\n".join(lines))


def exports_of_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """The exports a run was to materialize: its planned materializations, which every run
    records (an in-process run leaves its asset selection empty)."""
    planned = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    keys = {record.event_log_entry.dagster_event.asset_key for record in planned} | set(run.asset_selection or ())
    return export_names_of_assets(keys)


def _send_all(
    context,
    kind: str,
    plans: Mapping[str, ExportPlan],
    connections: Mapping[str, object],
    settings: NotificationSettings,
    compose,
) -> None:
    run = context.dagster_run
    for name in exports_of_run(context.instance, run):
        plan = plans.get(name)
        if plan is None:
            continue
        mail = compose(plan, context.instance, run, settings)
        if mail is None or not mail.recipients:
            continue
        connection_name = mail_connection_name(plan.spec, connections)
        connection = connections.get(connection_name) if connection_name else None
        if not isinstance(connection, SmtpConnection):
            context.log.warning(f"For export {name}, no smtp connection to send the {kind} mail through")
            continue
        try:
            send_mail(connection_name, connection, mail)
        except (OSError, smtplib.SMTPException, MissingSecretError) as error:
            # A broken mail server must not change the export's outcome; it shows up here instead.
            context.log.warning(
                f"Could not send the {kind} mail for export {name} through {connection_name} "
                f"({connection.host}:{connection.port}): {error}"
            )
        else:
            context.log.info(f"Sent the {kind} mail for export {name} to {', '.join(mail.recipients)}")


def build_notification_sensors(
    plans: Mapping[str, ExportPlan], connections: Mapping[str, object], redirected: bool = False
) -> list[dg.SensorDefinition]:
    """The failure and success mail sensors, running by default unless delivery is redirected to
    the download folder (the demo, staging): then no partner got a file, and the mail server may
    be as fictional as the partners', so they start stopped and the UI can start them."""
    wanted = {name: plan for name, plan in plans.items() if failure_recipients(plan.spec) or success_recipients(plan.spec)}
    if not wanted:
        return []
    status = dg.DefaultSensorStatus.STOPPED if redirected else dg.DefaultSensorStatus.RUNNING
    stopped = " Stopped by default: delivery is redirected to the download folder (EXPORT_REDIRECT_TO_DOWNLOAD)." if redirected else ""

    @dg.run_failure_sensor(
        name=FAILURE_MAIL_SENSOR,
        default_status=status,
        description="Mails notify.on_failure when an export's run fails: export, window, time, step, error, link." + stopped,
    )
    def export_failure_mail(context: dg.RunFailureSensorContext, notification_settings: NotificationSettings):
        _send_all(context, "failure", wanted, connections, notification_settings, failure_mail)

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name=SUCCESS_MAIL_SENSOR,
        default_status=status,
        description="Mails notify.on_success and the owner when an export delivered: files, sizes, rows, location." + stopped,
    )
    def export_success_mail(context: dg.RunStatusSensorContext, notification_settings: NotificationSettings):
        _send_all(context, "success", wanted, connections, notification_settings, success_mail)

    return [export_failure_mail, export_success_mail]
