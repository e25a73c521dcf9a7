"""TLS for the gateway: minimum version 1.3, certificate files re-read when they change.

Renewal (cert-manager, certbot/ACME) replaces the certificate and key files; the server keeps its
listening socket and, on the next handshake whose files have changed, builds a fresh context from
them and hands the connection to it (the SNI callback runs at every ClientHello, with or without
a server name). A half-written renewal (a key that does not match yet) keeps the previous pair
serving and is retried on the next handshake. No restart, no dropped connections.
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class TLSConfigError(ValueError):
    """The TLS settings cannot serve: files missing or unreadable, or TLS required and absent."""


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context that refuses anything older than TLS 1.3."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


class ReloadingTLSContext:
    """The listening context plus the newest one built from the files (see the module doc)."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file, self.key_file = Path(cert_file), Path(key_file)
        self._lock = threading.Lock()
        self._stamp = self._files_stamp()
        try:
            self.context = server_context(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(
                f"serving.tls_cert_file/tls_key_file: cannot load {self.cert_file} with "
                f"{self.key_file}: {exc.strerror or exc}"
            ) from None
        self.context.sni_callback = self._on_client_hello
        self._current = self.context
        self.reloads = 0

    def _files_stamp(self) -> tuple[tuple[int, int], ...]:
        return tuple(
            (p.stat().st_mtime_ns, p.stat().st_size) for p in (self.cert_file, self.key_file)
        )

    def refresh(self) -> ssl.SSLContext:
        """The context of the files as they are now (rebuilt only when they changed)."""
        try:
            stamp = self._files_stamp()
        except OSError:  # mid-replacement: keep serving the previous pair
            return self._current
        if stamp == self._stamp:
            return self._current
        with self._lock:
            if stamp != self._stamp:
                try:
                    fresh = server_context(self.cert_file, self.key_file)
                except (OSError, ssl.SSLError) as exc:
                    logger.warning("TLS files changed but do not load yet (%s); kept the old", exc)
                    return self._current
                fresh.sni_callback = self._on_client_hello
                self._current, self._stamp = fresh, stamp
                self.reloads += 1
                logger.info("TLS certificate reloaded from %s", self.cert_file)
        return self._current

    def _on_client_hello(self, connection: Any, server_name: str | None, context: Any) -> None:
        current = self.refresh()
        if connection.context is not current:
            connection.context = current
        return None


@dataclass(frozen=True)
class TLSContextFactory:
    """uvicorn's `ssl_context_factory` (picklable, so every worker process builds its own)."""

    cert_file: str
    key_file: str

    def __call__(self, config: Any, default_factory: Any) -> ssl.SSLContext:
        return ReloadingTLSContext(Path(self.cert_file), Path(self.key_file)).context


def tls_factory(serving: Any, profile: str) -> TLSContextFactory | None:
    """The factory for the configured certificate, None for plain HTTP (refused when required).

    Checks the files load now, so a bad pair fails `serve` at start with one line.
    """
    cert, key = serving.tls_cert_file, serving.tls_key_file
    required = serving.tls_required if serving.tls_required is not None else profile == "production"
    if bool(cert) != bool(key):
        raise TLSConfigError("serving: set both tls_cert_file and tls_key_file, or neither")
    if cert is None or key is None:
        if required:
            raise TLSConfigError(
                f"serving: TLS is required{' in production' if profile == 'production' else ''}; "
                "set AGENT_PLATFORM_SERVING_TLS_CERT_FILE and AGENT_PLATFORM_SERVING_TLS_KEY_FILE"
            )
        return None
    cert, key = Path(cert).expanduser().resolve(), Path(key).expanduser().resolve()
    ReloadingTLSContext(cert, key)  # raises TLSConfigError, one line
    return TLSContextFactory(str(cert), str(key))
