"""Which errors of a step are retried, and how: the one place that classifies failures.

Permanent errors (configuration, authentication, host key, certificate, permission, bad
data) fail the step at once with their cause; retrying cannot heal them. Transient ones (a
refused, reset or timed-out connection, a server saying "try later") are retried as the
spec's `retries` asks, and when the last retry fails too the step fails with the cause,
never with Dagster's bare "Exceeded max_retries".

Errors are recognized by class name along the exception chain, so that the clients
(paramiko, botocore, database drivers) stay imported lazily by the targets that use them.
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from export_pipelines.spec.export import Retries

PERMANENT = "permanent"
TRANSIENT = "transient"


@dataclass(frozen=True)
class ErrorClass:
    """kind: PERMANENT or TRANSIENT; hint: what to fix, when the error's own message may not say."""

    kind: str
    hint: str | None = None

    @property
    def transient(self) -> bool:
        return self.kind == TRANSIENT


_CHECK_PATHS = "a file or folder the connection names does not exist: check its path in connections.yaml and on the server"
_NO_PERMISSION = "the user may not do this there: check the connection's username and path, and the user's rights on the server"
# S3 is a connection's (connections.yaml) or the download store's (EXPORT_DOWNLOADS_STORE_URL, AWS_* variables).
_CHECK_BUCKET = "check the bucket and prefix: the connection's, or EXPORT_DOWNLOADS_STORE_URL's for the download store"
_CHECK_S3_CREDENTIALS = (
    "check the credentials (the connection's, or for the download store the AWS chain: AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, a profile or an instance role) and the bucket's policy"
)

# By fully qualified class name, looked up along the exception class's MRO: a subclass's entry wins over its base's.
_BY_CLASS: dict[str, ErrorClass] = {
    "export_pipelines.spec.connections.MissingSecretError": ErrorClass(PERMANENT),
    "export_pipelines.source.NoSourceDatabase": ErrorClass(PERMANENT),
    "export_pipelines.targets.remote.RunEnded": ErrorClass(PERMANENT),
    "export_pipelines.stages.bad_rows.TooManyBadRows": ErrorClass(PERMANENT),
    "paramiko.ssh_exception.AuthenticationException": ErrorClass(PERMANENT),
    "paramiko.ssh_exception.BadHostKeyException": ErrorClass(PERMANENT),
    # Everything else paramiko raises is the SSH conversation breaking off (banner, EOF, no session).
    "paramiko.ssh_exception.SSHException": ErrorClass(TRANSIENT),
    # RFC 959: 5yz replies are permanent (550 no such folder or no permission, 530 not logged in), 4yz transient.
    "ftplib.error_perm": ErrorClass(PERMANENT, _NO_PERMISSION + "; an unknown folder is answered the same way (550)"),
    "ftplib.error_temp": ErrorClass(TRANSIENT),
    "ftplib.error_reply": ErrorClass(TRANSIENT),
    "ftplib.error_proto": ErrorClass(TRANSIENT),
    "ssl.SSLCertVerificationError": ErrorClass(
        PERMANENT, "the server's certificate is not trusted: set the connection's ca_file to the CA that signed it, or fix the certificate"
    ),
    "ssl.SSLEOFError": ErrorClass(TRANSIENT),
    "ssl.SSLZeroReturnError": ErrorClass(TRANSIENT),
    # Any other TLS failure is a protocol or cipher mismatch: configuration.
    "ssl.SSLError": ErrorClass(PERMANENT),
    "botocore.exceptions.NoCredentialsError": ErrorClass(PERMANENT, _CHECK_S3_CREDENTIALS),
    "botocore.exceptions.PartialCredentialsError": ErrorClass(PERMANENT, _CHECK_S3_CREDENTIALS),
    "botocore.exceptions.ConnectionError": ErrorClass(TRANSIENT),
    "botocore.exceptions.HTTPClientError": ErrorClass(TRANSIENT),
    "builtins.EOFError": ErrorClass(TRANSIENT),
}

# S3 error codes that mean "try later" (AWS's own retry handler treats these as throttling or transient).
_S3_TRY_LATER = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable"}
_PERMANENT_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
_ERRNO_HINTS = {errno.ENOENT: _CHECK_PATHS, errno.EACCES: _NO_PERMISSION, errno.EPERM: _NO_PERMISSION}
# SQLSTATE classes (ISO/IEC 9075) whose conditions pass: connection exception, transaction rollback,
# insufficient resources, operator intervention, system error.
_TRANSIENT_SQLSTATE_CLASSES = {"08", "40", "53", "57", "58"}
_SQLITE_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_DBAPI_PERMANENT = {"ProgrammingError", "IntegrityError", "DataError", "NotSupportedError"}
_DBAPI_CONNECTION = {"OperationalError", "InterfaceError"}


def classify(error: BaseException) -> ErrorClass:
    """Permanent or transient, from the first exception along the chain (outermost first) that
    says which; wrappers such as DeliveryError say nothing and pass on to their cause. An error
    nothing recognizes is permanent: a refusal of our own (host key, policy) or a bug."""
    for link in _chain(error):
        found = _classify_one(link)
        if found is not None:
            return found
    return ErrorClass(PERMANENT)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ if link.__cause__ is not None else (None if link.__suppress_context__ else link.__context__)


def _classify_one(error: BaseException) -> ErrorClass | None:
    mro = type(error).__mro__
    names = [f"{cls.__module__}.{cls.__qualname__}" for cls in mro]
    if names[0].startswith("sqlalchemy."):
        return None  # SQLAlchemy wraps the driver's error, which is the cause
    if "botocore.exceptions.ClientError" in names:
        return _s3_client_error(error)
    short_names = {cls.__name__ for cls in mro}
    if short_names & (_DBAPI_PERMANENT | _DBAPI_CONNECTION) and (hasattr(error, "sqlstate") or hasattr(error, "sqlite_errorcode")):
        return _database_error(error, short_names)
    for name in names:
        if name in _BY_CLASS:
            return _BY_CLASS[name]
    if isinstance(error, OSError):
        return _os_error(error)
    return None


def _s3_client_error(error) -> ErrorClass:
    response = getattr(error, "response", {}) or {}
    code = response.get("Error", {}).get("Code", "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if code in _S3_TRY_LATER or status >= 500:
        return ErrorClass(TRANSIENT)
    if code in {"NoSuchBucket", "NoSuchKey", "404"}:
        return ErrorClass(PERMANENT, _CHECK_BUCKET)
    return ErrorClass(PERMANENT, _CHECK_S3_CREDENTIALS if status in (401, 403) else None)


def _database_error(error, short_names: set[str]) -> ErrorClass:
    """A PEP 249 driver error: by its SQLSTATE when it has one, else by its class."""
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate:
        return ErrorClass(TRANSIENT if sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES else PERMANENT)
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        # A local file: only a lock held by another writer passes.
        return ErrorClass(TRANSIENT if code in _SQLITE_BUSY_CODES else PERMANENT)
    if short_names & _DBAPI_PERMANENT:
        return ErrorClass(PERMANENT)
    # A network database that could not be reached gives no SQLSTATE (libpq's refused, reset, timed out).
    return ErrorClass(TRANSIENT)


def _os_error(error: OSError) -> ErrorClass:
    if isinstance(error, socket.gaierror):
        if error.errno == socket.EAI_AGAIN:
            return ErrorClass(TRANSIENT)
        return ErrorClass(PERMANENT, "the host name does not resolve: check the connection's host")
    if isinstance(error, (ConnectionError, TimeoutError)):
        return ErrorClass(TRANSIENT)
    if error.errno in _PERMANENT_ERRNOS:
        return ErrorClass(PERMANENT, _ERRNO_HINTS.get(error.errno))
    # Unreachable networks, and protocol errors without a number (SFTP's "Failure"), may pass.
    return ErrorClass(TRANSIENT)


@dataclass(frozen=True)
class RetrySchedule:
    """Sana's "N retries within a maximum interval": waits d, 2d, 4d, ... that add up to `within`.

    Full jitter draws each wait between 0 and its nominal length, so runs retrying after the
    same outage spread out and the total never exceeds `within` (AWS Architecture Blog,
    "Exponential Backoff And Jitter", 2015).
    """

    max_retries: int
    within_seconds: float

    @property
    def first_wait(self) -> float:
        return self.within_seconds / (2**self.max_retries - 1)

    def nominal_wait(self, retry: int) -> float:
        """Seconds before retry number `retry` (1-based) at most."""
        return self.first_wait * 2 ** (retry - 1)

    def wait_before(self, retry: int) -> float:
        return random.uniform(0, self.nominal_wait(retry))


def retry_schedule_for(retries: Retries | None) -> RetrySchedule | None:
    if retries is None or retries.max_retries == 0:
        return None
    return RetrySchedule(retries.max_retries, retries.within.total_seconds())


@contextlib.contextmanager
def classified_errors(
    context: dg.OpExecutionContext, schedule: RetrySchedule | None, export: str, step: str, rerun: str
) -> Iterator[None]:
    """Run a step's work: a transient error is retried by the schedule; anything else, and a
    transient error after the last retry, fails the step with its cause as the message, which
    names `export` and `step` (unless the cause does) and ends with the `rerun` command.

    Raises dg.RetryRequested or dg.Failure(allow_retries=False); a dg.Failure raised inside
    passes unchanged.
    """
    try:
        yield
    except (dg.Failure, dg.RetryRequested):
        raise
    except Exception as error:
        found = classify(error)
        cause = str(error) or type(error).__name__
        if f"export {export}" not in cause:
            cause = f"For export {export}, the {step} step failed: {cause}"
        if found.transient and schedule is not None and context.retry_number < schedule.max_retries:
            retry = context.retry_number + 1
            wait = schedule.wait_before(retry)
            context.log.warning(f"{cause} (transient: retry {retry} of {schedule.max_retries} in {wait:.1f} s)")
            raise dg.RetryRequested(max_retries=schedule.max_retries, seconds_to_wait=wait) from error
        if not found.transient:
            advice = f"Not retried: this does not heal by itself. {_sentence(found.hint)}Then: {rerun}"
        elif schedule is None:
            advice = f"This looks transient; it was not retried (no `retries` given). Once it passes: {rerun}"
        else:
            advice = (
                f"This looks transient but still failed after {schedule.max_retries} retries within "
                f"{schedule.within_seconds:g} s. Once it passes: {rerun}"
            )
        raise dg.Failure(description=f"{cause}\n{advice}", allow_retries=False) from error


def _sentence(hint: str | None) -> str:
    return f"{hint[0].upper()}{hint[1:]}. " if hint else ""
