"""Sending one mail through an smtp connection of connections.yaml."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from export_pipelines.spec.connections import SmtpConnection


@dataclass(frozen=True)
class Mail:
    subject: str
    recipients: tuple[str, ...]
    body: str


def send_mail(name: str, connection: SmtpConnection, mail: Mail) -> None:
    """Raises OSError, smtplib.SMTPException or MissingSecretError; callers decide what a failure means."""
    message = EmailMessage()
    message["From"] = connection.sender
    message["To"] = ", ".join(mail.recipients)
    message["Subject"] = mail.subject
    message.set_content(mail.body)
    timeout = connection.timeout_seconds
    context = ssl.create_default_context(cafile=connection.ca_file) if connection.security != "none" else None
    if connection.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(connection.host, connection.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(connection.host, connection.port, timeout=timeout)
    with client:
        if connection.security == "starttls":
            client.starttls(context=context)
        if connection.username is not None and connection.password is not None:
            client.login(connection.username, connection.password.read(name, "password"))
        client.send_message(message, to_addrs=list(mail.recipients))
