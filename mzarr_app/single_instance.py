"""Single-instance hand-off: a second launch sends its files to the running viewer over a QLocalSocket."""

from __future__ import annotations

import getpass
import hashlib
import json
import os

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket


def server_name() -> str:
    """Per-user socket name."""
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return "mzarr-viewer-" + hashlib.sha1(user.encode()).hexdigest()[:12]


def send_to_running(paths: list[str], name: str | None = None, timeout_ms: int = 1000) -> bool:
    """Give ``paths`` to a running instance; True if one took them."""
    sock = QLocalSocket()
    sock.connectToServer(name or server_name())
    if not sock.waitForConnected(timeout_ms):
        return False
    sock.write((json.dumps([os.path.abspath(p) for p in paths]) + "\n").encode())
    ok = sock.waitForBytesWritten(timeout_ms) and sock.waitForReadyRead(timeout_ms)
    reply = bytes(sock.readAll().data()).strip() if ok else b""
    sock.disconnectFromServer()
    return reply == b"ok"


class SingleInstanceServer(QObject):
    """Listens for other launches; emits ``filesReceived`` with their paths."""

    filesReceived = Signal(list)

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or server_name()
        self.server = QLocalServer(self)
        self.server.newConnection.connect(self._connection)
        self._clients: list[QLocalSocket] = []  # kept until they are deleted by Qt (never by Python's GC)

    def listen(self) -> bool:
        """Start listening; a stale socket left by a crash is removed, a live instance's one is left alone."""
        if self.server.listen(self.name):
            return True
        probe = QLocalSocket(self)  # owned by Qt and deleted by its event loop, not mid-event by Python's GC
        probe.connectToServer(self.name)
        alive = probe.waitForConnected(300)
        probe.abort()
        probe.deleteLater()
        if alive:  # another viewer is running: it keeps the name
            return False
        QLocalServer.removeServer(self.name)
        return self.server.listen(self.name)

    def close(self) -> None:
        """Stop listening and drop the connections still open."""
        self.server.close()
        for sock in self._clients:
            sock.blockSignals(True)
            sock.abort()
            sock.deleteLater()
        self._clients.clear()

    def _forget(self, sock: QLocalSocket) -> None:
        if sock in self._clients:
            self._clients.remove(sock)
        sock.deleteLater()

    def _connection(self) -> None:
        while self.server.hasPendingConnections():
            sock = self.server.nextPendingConnection()
            buf = bytearray()

            def read(sock: QLocalSocket = sock, buf: bytearray = buf) -> None:
                buf.extend(bytes(sock.readAll().data()))
                if b"\n" not in buf:
                    return
                line = bytes(buf).split(b"\n", 1)[0]
                try:
                    paths = [str(p) for p in json.loads(line.decode())]
                except (ValueError, UnicodeDecodeError, TypeError):
                    sock.write(b"error\n")
                else:
                    sock.write(b"ok\n")
                    self.filesReceived.emit(paths)
                sock.flush()
                sock.disconnectFromServer()

            self._clients.append(sock)
            sock.readyRead.connect(read)
            sock.disconnected.connect(lambda sock=sock: self._forget(sock))
            if sock.bytesAvailable():
                read()
