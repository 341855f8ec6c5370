"""FTP and explicit FTPS (AUTH TLS, PROT P) through ftplib, certificates verified."""

from __future__ import annotations

import calendar
import ftplib
import posixpath
import re
import ssl
import time
from pathlib import Path

from export_pipelines.spec.connections import FtpConnection
from export_pipelines.targets.base import DeliveryError, LocalFile
from export_pipelines.targets.remote import FolderSession, ListingRefused, RemoteEntry, display_folder

BLOCK_SIZE = 256 * 1024
# A listing refused for want of permission rather than for an empty folder (both can be a 550).
_REFUSED = re.compile(r"permission|denied|access|privilege", re.IGNORECASE)


class SessionReusingFTP_TLS(ftplib.FTP_TLS):
    """ftplib opens every data connection with a fresh TLS session; vsftpd's default
    `require_ssl_reuse=YES` refuses that (522 on TLS 1.2, EOF on TLS 1.3), as a protection
    against a stolen data connection. Resuming the control connection's session satisfies it."""

    def ntransfercmd(self, cmd, rest=None):
        connection, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            connection = self.context.wrap_socket(connection, server_hostname=self.host, session=self.sock.session)
        return connection, size


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verifies the certificate chain and the host name, which ftplib's default context does not."""
    cafile = str(Path(ca_file).expanduser()) if ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as error:
        raise DeliveryError(f"cannot read ca_file {cafile}: {error}") from error


class FtpSession(FolderSession):
    def __init__(self, name: str, connection: FtpConnection, folder: str):
        super().__init__(connection.root, folder)
        self.connection = connection
        password = connection.password.read(name, "password") if connection.password else ""
        timeout = connection.timeout_seconds
        if connection.type == "ftps":
            self.ftp: ftplib.FTP = SessionReusingFTP_TLS(context=tls_context(connection.ca_file), timeout=timeout)
        else:
            self.ftp = ftplib.FTP(timeout=timeout)
        try:
            self.ftp.connect(connection.host, connection.port, timeout=timeout)
            if isinstance(self.ftp, ftplib.FTP_TLS):
                self.ftp.auth()
            try:
                self.ftp.login(connection.username, password)
            except ftplib.error_perm as error:
                source = f"the password from ${connection.password.env}" if connection.password else "no password"
                raise DeliveryError(f"the server refused user {connection.username!r} with {source}: {error}") from None
            if isinstance(self.ftp, ftplib.FTP_TLS):
                self.ftp.prot_p()
            self.ftp.set_pasv(connection.passive)
            self.ftp.voidcmd("TYPE I")
            self.home = self.ftp.pwd()
        except BaseException:
            self.ftp.close()
            raise

    def location_of(self, name: str) -> str:
        c = self.connection
        return f"{c.type}://{c.username}@{c.host}:{c.port}/{posixpath.join(display_folder(c.root, self.path), name).lstrip('/')}"

    def login_folder(self) -> str:
        return self.home

    def real_path(self, folder: str) -> str:
        # FTP has no realpath; a server that reports its working directory as the file system
        # sees it (vsftpd: getcwd) shows where a link leads once we stand in the folder.
        self.ftp.cwd(folder)
        try:
            return self.ftp.pwd()
        finally:
            self.ftp.cwd(self.home)

    def is_folder(self, folder: str) -> bool:
        try:
            self.ftp.cwd(folder)
        except ftplib.error_perm:
            return False
        self.ftp.cwd(self.home)
        return True

    def make_folder(self, folder: str) -> None:
        self.ftp.mkd(folder)

    def list_entries(self) -> list[RemoteEntry]:
        folder = self.folder
        try:
            return [
                RemoteEntry(name, _ftp_time(facts.get("modify", "")))
                for name, facts in self.ftp.mlsd(folder, facts=["type", "modify"])
                if facts.get("type") == "file"
            ]
        except ftplib.error_perm:
            pass  # vsftpd has no MLSD: NLST -a (dot files included) and MDTM per file
        listed: list[str] = []
        try:
            reply = self.ftp.retrlines(f"NLST -a {folder}", listed.append)
        except ftplib.error_perm as error:
            if _REFUSED.search(str(error)):
                raise self._refused(error) from error
            if str(error).startswith("550"):  # some servers answer an empty folder with 550
                return []
            raise
        if folder in listed:
            # vsftpd lists a folder it may not open as if it were a file: its own path, which no
            # entry of the folder can be (entries are names, or the folder's path plus a name).
            raise self._refused(f"{reply.strip()} with the folder itself as the only entry")
        names = [posixpath.basename(n) for n in listed]
        entries = []
        for name in names:
            if name in {".", ".."}:
                continue
            try:
                stamp = self.ftp.voidcmd(f"MDTM {self._path(name)}").split()[-1]
            except ftplib.error_perm:
                continue  # a folder, not a file
            entries.append(RemoteEntry(name, _ftp_time(stamp)))
        return entries

    def _refused(self, reply: object) -> ListingRefused:
        return ListingRefused(f"the server does not let {self.connection.username!r} list {self.folder} ({reply})")

    def put(self, local: Path, name: str) -> None:
        with local.open("rb") as source:
            self.ftp.storbinary(f"STOR {self._path(name)}", source, blocksize=BLOCK_SIZE)

    def verify(self, name: str, file: LocalFile) -> str:
        size = self.ftp.size(self._path(name))
        if size != file.bytes:
            raise DeliveryError(f"the server holds {size} bytes of {file.name}, {file.bytes} were sent")
        return "size"

    def replace(self, temporary: str, final: str) -> None:
        try:
            self.ftp.rename(self._path(temporary), self._path(final))
        except ftplib.error_perm:
            # Servers that refuse to rename onto an existing name (vsftpd and pyftpdlib overwrite).
            self.ftp.delete(self._path(final))
            self.ftp.rename(self._path(temporary), self._path(final))

    def delete(self, name: str) -> None:
        self.ftp.delete(self._path(name))

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            self.ftp.close()


def _ftp_time(stamp: str) -> float:
    """MLSD/MDTM time (YYYYMMDDHHMMSS[.sss], UTC) as epoch seconds; 0 when absent."""
    try:
        return float(calendar.timegm(time.strptime(stamp[:14], "%Y%m%d%H%M%S")))
    except ValueError:
        return 0.0
