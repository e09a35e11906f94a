#!/usr/bin/env python3
"""AMQP over TLS with pika (Debian's python3-pika): the broker at AMQPS_HOST:AMQPS_PORT
presents a certificate that TLS_CA signed, for the name localhost.

1. guest/guest with PLAIN over TLS: declare a queue, publish with confirms, get it back.
2. With TLS_CLIENT_CERT and TLS_CLIENT_KEY (mutual TLS): log in with SASL EXTERNAL, no
   password; the broker maps the certificate's common name to a user, which must be
   allowed on the default vhost.

Prints one line per step and "tls.py: PASS", or "FAIL: ..." and exits 1. Bounded by
SMOKE_TIMEOUT seconds (default 60).
"""

import os
import signal
import ssl
import sys
import uuid

import pika
import pika.credentials


def step(msg):
    print(f"tls.py: ok: {msg}", flush=True)


def on_alarm(_signum, _frame):
    print("tls.py: FAIL: timed out (SMOKE_TIMEOUT)", file=sys.stderr, flush=True)
    os._exit(2)


def params(credentials, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=os.environ["TLS_CA"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key)
    return pika.ConnectionParameters(
        host=os.environ.get("AMQPS_HOST", "localhost"),
        port=int(os.environ["AMQPS_PORT"]),
        credentials=credentials,
        ssl_options=pika.SSLOptions(ctx, server_hostname="localhost"),
        connection_attempts=1,
    )


def round_trip(conn, what):
    ch = conn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare(queue=f"tls-{uuid.uuid4().hex[:8]}", exclusive=True).method.queue
    body = f"over tls: {what}".encode()
    ch.basic_publish("", q, body, mandatory=True)
    _method, _props, got = ch.basic_get(q, auto_ack=True)
    if got != body:
        raise AssertionError(f"{what}: got {got!r}, want {body!r}")
    step(f"{what}: published with a confirm and got the message back")


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(os.environ.get("SMOKE_TIMEOUT", "60")))

    conn = pika.BlockingConnection(params(pika.PlainCredentials("guest", "guest")))
    try:  # the TLS version negotiated, through pika's internals
        version = conn._impl._transport._sock.version()
    except AttributeError:
        version = "TLS"
    step(f"connected with PLAIN over {version}")
    round_trip(conn, "PLAIN")
    conn.close()

    cert, key = os.environ.get("TLS_CLIENT_CERT"), os.environ.get("TLS_CLIENT_KEY")
    if cert:
        conn = pika.BlockingConnection(params(pika.credentials.ExternalCredentials(), cert, key))
        step("connected with SASL EXTERNAL and a client certificate")
        round_trip(conn, "EXTERNAL")
        conn.close()
    print("tls.py: PASS", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # any mismatch or connection failure
        print(f"tls.py: FAIL: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
