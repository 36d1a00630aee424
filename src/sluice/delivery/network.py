"""Connection errors in words, for the timeline: webhooks (aiohttp) and SMTP
(aiosmtplib) both end up with an `OSError` from the socket layer, whose own text is
often a bare code ("Unknown error -2" for a name that does not resolve)."""

from __future__ import annotations

import errno
import os
import re
import socket
import ssl

_NO_SUCH_NAME = {
    getattr(socket, name)
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY")
    if hasattr(socket, name)
}
_OPENSSL_NOISE = re.compile(r"^\[[A-Z0-9_]+: [A-Z0-9_]+\] | \(_ssl\.c:\d+\)$")


def describe(error: BaseException, host: str, port: int | None) -> str:
    """What went wrong reaching `host:port`, in one line: "could not resolve HOST",
    "cannot connect to HOST:PORT: Connection refused", "HOST:PORT reset the
    connection", "timed out connecting to HOST:PORT", "TLS with HOST:PORT failed: …",
    "the certificate of HOST was refused: …"."""
    where = f"{host}:{port}" if port else host
    if isinstance(error, socket.gaierror):
        if error.errno in _NO_SUCH_NAME:
            return f"could not resolve {host}"
        if error.errno == socket.EAI_AGAIN:
            return f"could not resolve {host}: temporary DNS failure"
        return f"could not resolve {host}: {error.strerror or error}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the certificate of {host} was refused: {error.verify_message or error}"
    if isinstance(error, ssl.SSLError):
        return f"TLS with {where} failed: {tls_reason(error)}"
    if isinstance(error, TimeoutError):
        return f"timed out connecting to {where}"
    if isinstance(error, ConnectionResetError) or getattr(error, "errno", None) == errno.ECONNRESET:
        return f"{where} reset the connection"
    code = getattr(error, "errno", None)
    if isinstance(code, int) and code > 0:
        return f"cannot connect to {where}: {os.strerror(code)}"
    return f"cannot connect to {where}: {error or type(error).__name__}"


def tls_reason(error: ssl.SSLError) -> str:
    """OpenSSL's reason without its codes: "wrong version number", not
    "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"."""
    text = error.strerror or (error.args[1] if len(error.args) > 1 else str(error))
    return _OPENSSL_NOISE.sub("", str(text)) or str(error.reason or error)
