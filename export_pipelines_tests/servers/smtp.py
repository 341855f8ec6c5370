"""aiosmtpd on loopback: a real SMTP server that keeps what it receives."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from export_pipelines_tests.servers.network import HOST, free_port


@dataclass
class ReceivedMail:
    mail_from: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return self.message["Subject"]

    @property
    def body(self) -> str:
        return self.message.get_content()


@dataclass
class Inbox:
    received: list[ReceivedMail] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


class SmtpServer:
    def __init__(self, tls_context: ssl.SSLContext | None = None, credentials: tuple[str, str] | None = None):
        self.inbox = Inbox()
        self.port = free_port()
        self.host = HOST
        options = {}
        if tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=True)
        if credentials is not None:
            user, password = credentials

            def authenticate(server, session, envelope, mechanism, auth_data):
                ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == (user, password)
                # handled=False: with the default a failed login gets no reply and the client hangs.
                return AuthResult(success=ok, handled=False)

            options.update(authenticator=authenticate, auth_required=True, auth_require_tls=tls_context is not None)
        self.controller = Controller(self.inbox, hostname=HOST, port=self.port, **options)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
