"""A deliberately naive HTTP/1.1 client: it sends exactly the bytes it is given, tricks included."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field

# Long enough for any honest answer; a server that hangs longer is reported as not answering.
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RawRequest:
    """One request as it goes on the wire; headers keep their order, case and repeats."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    # Content-Length is added unless the request sets its own (or Transfer-Encoding).
    extra_length: bool = field(default=True)
    # Close the sending side after the request, as a client cut off mid-body would.
    half_close: bool = False

    def encode(self) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        names = {name.lower() for name, _ in self.headers}
        if self.extra_length and not names & {"content-length", "transfer-encoding"} and (
                self.body or self.method in ("POST", "PUT", "PATCH")):
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("Connection: close")
        head = "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n"
        return head + self.body


def send(port: int, request: RawRequest) -> int | None:
    """The HTTP status the server answered on 127.0.0.1:`port`, or None when it did not answer."""
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS) as sock:
            try:
                sock.sendall(request.encode())
                if request.half_close:
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may have answered and closed before reading everything
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    except OSError:
        pass
    parts = answer.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


@dataclass(frozen=True)
class RawAnswer:
    """The status and body the server answered, or status None when it did not answer."""

    status: int | None
    body: bytes

    def reason(self) -> str:
        """The `error` of a JSON answer, or "" when the body is not one."""
        try:
            return str(json.loads(self.body).get("error", ""))
        except (ValueError, AttributeError):
            return ""


def exchange(port: int, request: RawRequest, timeout: float = TIMEOUT_SECONDS) -> RawAnswer:
    """Send `request` to 127.0.0.1:`port` and read the answer until the server closes."""
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            try:
                sock.sendall(request.encode())
            except OSError:
                pass  # the server may have answered and closed before reading everything
            while chunk := sock.recv(65536):
                answer += chunk
    except OSError:
        pass
    head, _, body = answer.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return RawAnswer(None, answer)
    return RawAnswer(int(parts[1]), body)
