"""A local SMTP server standing in for a mail relay, for the email channel's tests.

    python smtp_receiver.py --out EVENTS.jsonl --cert-dir DIR --username U --password P [--no-starttls]

Listens on 127.0.0.1 (a free port), prints `{"port": N}` on standard output once it accepts
connections, and appends one JSON object per line to EVENTS.jsonl for every EHLO (`event: ehlo`,
with whether the session was already TLS), every login attempt (`event: auth`: mechanism, user,
success, TLS) and every message accepted (`event: message`: envelope, TLS version, the login it
came under, decoded headers and each MIME part's content type and text).

By default it is a submission server as a real one should be: STARTTLS required before anything
else, AUTH required and offered only under TLS, with a self-signed certificate for 127.0.0.1
(made in DIR on first use; clients trust it through SSL_CERT_FILE=DIR/cert.pem). `--no-starttls`
offers no STARTTLS and advertises AUTH in clear, which a careful client must refuse to use.
"""

import argparse
import asyncio
import datetime
import email
import email.policy
import ipaddress
import json
from pathlib import Path
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def self_signed(directory):
    """cert.pem and key.pem for 127.0.0.1 and localhost (cryptography comes with moto)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigsci-kit test SMTP")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        # An end-entity certificate: rustls refuses a CA certificate as the server's own.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


class Recorder:
    def __init__(self, out, username, password):
        self.out = out
        self.username = username.encode()
        self.password = password.encode()

    def record(self, event):
        with self.out.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(event) + "\n")

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        # A handle_EHLO hook takes over recording the client's name from aiosmtpd.
        session.host_name = hostname
        self.record({"event": "ehlo", "hostname": hostname, "tls": session.ssl is not None})
        return responses

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        success = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.username
            and auth_data.password == self.password
        )
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None
        self.record(
            {
                "event": "auth",
                "mechanism": mechanism,
                "username": login,
                "success": success,
                "tls": session.ssl is not None,
            }
        )
        # handled=False: aiosmtpd answers a refusal itself (535); True would leave the client waiting.
        return AuthResult(success=success, handled=False, auth_data=login)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        parts = [
            {"content_type": part.get_content_type(), "text": part.get_content()}
            for part in message.walk()
            if not part.is_multipart()
        ]
        tls = session.ssl is not None
        self.record(
            {
                "event": "message",
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "tls": tls,
                "tls_version": session.ssl["ssl_object"].version() if tls else None,
                "authenticated": bool(session.authenticated),
                "username": session.auth_data,
                "content_type": message.get_content_type(),
                "headers": {name: str(value) for name, value in message.items()},
                "parts": parts,
            }
        )
        return "250 OK"


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--no-starttls", action="store_true")
    args = parser.parse_args()

    recorder = Recorder(args.out, args.username, args.password)
    if args.no_starttls:
        options = {"auth_require_tls": False}
    else:
        cert, key = self_signed(args.cert_dir)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        options = {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(
            recorder,
            hostname="smtp.test",
            auth_required=True,
            authenticator=recorder.authenticate,
            **options,
        ),
        host="127.0.0.1",
        port=0,
    )
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
