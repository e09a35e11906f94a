#!/usr/bin/env python3
"""Cross-language smoke test of an AMQP 0-9-1 broker with pika (Debian's python3-pika).

Connects to AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/) and walks through what
every client does: declare an exchange and a queue, bind, publish with publisher confirms,
consume with manual acks, nack with requeue and see the redelivery, basic.get (and
get-empty), a mandatory publish that comes back as basic.return, and a clean close.

Prints one line per step and exits 0 when the broker behaved as RabbitMQ does; on any
mismatch it prints "FAIL: ..." and exits 1. The whole run is bounded by SMOKE_TIMEOUT
seconds (default 60).
"""

import os
import signal
import sys
import time
import uuid

import pika
import pika.exceptions

LANG = "python"
ROUTING_KEY = "smoke"


class Mismatch(Exception):
    """The broker answered something RabbitMQ would not have."""


def check(cond, what):
    if not cond:
        raise Mismatch(what)


def step(msg):
    print(f"smoke.py: ok: {msg}", flush=True)


def on_alarm(_signum, _frame):
    print("smoke.py: FAIL: timed out (SMOKE_TIMEOUT)", file=sys.stderr, flush=True)
    os._exit(2)


def props(n):
    return pika.BasicProperties(
        content_type="text/plain",
        delivery_mode=2,
        message_id=f"m{n}",
        headers={"x-smoke-lang": LANG, "n": n},
    )


def publish_confirmed(ch, exchange, body, n):
    """Publishes with confirms; pika's blocking channel raises NackError on a nack."""
    try:
        ch.basic_publish(exchange, ROUTING_KEY, body, props(n), mandatory=True)
    except pika.exceptions.NackError as e:
        raise Mismatch(f"publish {body!r}: broker nacked the confirm: {e}") from e
    except pika.exceptions.UnroutableError as e:
        raise Mismatch(f"publish {body!r}: returned as unroutable: {e}") from e


def consume_with_nack(conn, ch, queue, deadline):
    """Consumes m1..m3: acks m1 and m3, nacks m2 with requeue, then acks its redelivery."""
    seen = {}  # body -> list of redelivered flags, in arrival order
    errors = []

    def on_message(chan, method, properties, body):
        body = body.decode()
        flags = seen.setdefault(body, [])
        flags.append(method.redelivered)
        if body not in ("m1", "m2", "m3"):
            errors.append(f"unexpected delivery {body!r}")
        elif len(flags) == 1 and method.redelivered:
            errors.append(f"first delivery of {body} has redelivered=true")
        elif properties.headers is None or properties.headers.get("x-smoke-lang") != LANG:
            errors.append(f"{body}: headers did not round-trip: {properties.headers!r}")
        elif properties.message_id != body:
            errors.append(f"{body}: message_id {properties.message_id!r}, want {body!r}")
        elif body == "m2" and len(flags) == 1:
            chan.basic_nack(method.delivery_tag, multiple=False, requeue=True)
            return
        elif len(flags) > 1 and (body != "m2" or len(flags) > 2 or not method.redelivered):
            errors.append(f"{body}: unexpected delivery #{len(flags)} redelivered={method.redelivered}")
        chan.basic_ack(method.delivery_tag)

    ch.basic_qos(prefetch_count=1)
    tag = ch.basic_consume(queue, on_message, auto_ack=False)
    check(len(tag) > 0, "basic.consume-ok with an empty consumer tag")
    want = {"m1": [False], "m2": [False, True], "m3": [False]}
    while seen != want and not errors:
        if time.monotonic() > deadline:
            raise Mismatch(f"consume: timed out; deliveries so far {seen!r}, want {want!r}")
        conn.process_data_events(time_limit=0.2)
    check(not errors, "; ".join(errors))
    ch.basic_cancel(tag)
    step("consumed m1..m3, nack+requeue of m2 came back with redelivered=true, acked")


def get_messages(ch, queue, exchange):
    method, _, _ = ch.basic_get(queue, auto_ack=False)
    check(method is None, f"basic.get on empty queue returned {method!r}, want get-empty")
    step("basic.get on an empty queue gives get-empty")

    publish_confirmed(ch, exchange, b"m4", 4)
    publish_confirmed(ch, exchange, b"m5", 5)
    m4, p4, b4 = ch.basic_get(queue, auto_ack=False)
    check(m4 is not None, "basic.get: got get-empty, want m4")
    check(b4 == b"m4", f"basic.get body {b4!r}, want b'm4'")
    check(m4.message_count == 1, f"basic.get m4: message_count {m4.message_count}, want 1")
    check(not m4.redelivered, "basic.get m4: redelivered=true, want false")
    check(p4.content_type == "text/plain", f"basic.get m4: content_type {p4.content_type!r}")
    m5, _, b5 = ch.basic_get(queue, auto_ack=False)
    check(m5 is not None and b5 == b"m5", f"basic.get: {b5!r}, want b'm5'")
    check(m5.message_count == 0, f"basic.get m5: message_count {m5.message_count}, want 0")
    check(m5.delivery_tag > m4.delivery_tag, "basic.get: delivery tags do not increase")
    ch.basic_ack(m5.delivery_tag, multiple=True)
    method, _, _ = ch.basic_get(queue, auto_ack=False)
    check(method is None, "basic.get after ack(multiple) of both: want get-empty")
    step("basic.get returned m4 (message_count 1) and m5 (0); ack multiple emptied the queue")


def mandatory_return(ch, exchange):
    try:
        ch.basic_publish(exchange, "no-such-route", b"lost", props(6), mandatory=True)
    except pika.exceptions.UnroutableError as e:
        check(len(e.messages) == 1, f"unroutable: {len(e.messages)} returned messages, want 1")
        ret = e.messages[0]
        check(ret.method.reply_code == 312, f"basic.return reply_code {ret.method.reply_code}, want 312")
        check(ret.method.reply_text == "NO_ROUTE", f"basic.return reply_text {ret.method.reply_text!r}")
        check(ret.method.exchange == exchange, f"basic.return exchange {ret.method.exchange!r}")
        check(ret.method.routing_key == "no-such-route", f"basic.return routing_key {ret.method.routing_key!r}")
        check(ret.body == b"lost", f"basic.return body {ret.body!r}")
        step("mandatory unroutable publish came back as basic.return 312 NO_ROUTE")
        return
    raise Mismatch("mandatory unroutable publish: no basic.return")


def sender_selected(conn, queue):
    """CC and BCC add routing keys; BCC is removed, CC kept (issue 11)."""
    ch = conn.channel()
    others = [ch.queue_declare("", exclusive=True).method.queue for _ in range(2)]
    hdrs = {"CC": [others[0]], "BCC": [others[1]]}
    ch.basic_publish("", queue, b"cc", pika.BasicProperties(headers=hdrs))
    for q in [queue] + others:
        m, p, body = ch.basic_get(q, auto_ack=True)
        check(m is not None and body == b"cc", f"CC/BCC: queue {q} got {body!r}, want b'cc'")
        check(p.headers == {"CC": [others[0]]}, f"CC/BCC: headers {p.headers!r}, want CC only")
    step("CC and BCC headers routed to three queues; BCC removed, CC kept")
    ch.close()


def tx_return_at_commit(conn):
    """A mandatory unroutable publish in a transaction is returned at commit."""
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda _ch, method, _props, body: returned.append(body))
    ch.tx_select()
    ch.basic_publish("", "no-such-queue-" + uuid.uuid4().hex, b"txlost", mandatory=True)
    ch.basic_qos(prefetch_count=0)  # a round trip
    conn.process_data_events(time_limit=0)
    check(returned == [], f"tx: {returned!r} returned before tx.commit, want nothing")
    ch.tx_commit()
    conn.process_data_events(time_limit=0)
    check(returned == [b"txlost"], f"tx: {returned!r} returned at tx.commit, want [b'txlost']")
    step("tx: mandatory unroutable publish returned at tx.commit, not before")
    ch.close()


def user_id_refused(conn, queue):
    """A user_id other than the connection's user closes the channel with 406."""
    ch = conn.channel()
    ch.basic_publish("", queue, b"forged", pika.BasicProperties(user_id="somebody-else"))
    try:
        ch.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        want = "PRECONDITION_FAILED - user_id property set to 'somebody-else' but authenticated user was 'guest'"
        check(e.reply_code == 406 and e.reply_text == want, f"user_id: {e.reply_code} {e.reply_text!r}")
        step("forged user_id refused with 406 PRECONDITION_FAILED")
        return
    raise Mismatch("forged user_id: channel stayed open")


def run(url):
    deadline = time.monotonic() + float(os.environ.get("SMOKE_TIMEOUT", "60")) - 5
    params = pika.URLParameters(url)
    params.socket_timeout = 10
    params.blocked_connection_timeout = 30
    params.client_properties = {"connection_name": "sluice-crosslang-python"}
    conn = pika.BlockingConnection(params)
    step(f"connected to {params.host}:{params.port}")
    ch = conn.channel()
    ch.confirm_delivery()
    step("channel open in confirm mode")

    suffix = uuid.uuid4().hex[:8]
    exchange = f"sluice.smoke.{LANG}.{suffix}"
    queue = f"sluice.smoke.{LANG}.{suffix}"
    ch.exchange_declare(exchange, exchange_type="direct", durable=False, auto_delete=False)
    ok = ch.queue_declare(queue, durable=False, exclusive=False, auto_delete=False)
    check(ok.method.queue == queue, f"queue.declare-ok names {ok.method.queue!r}, want {queue!r}")
    check(ok.method.message_count == 0, f"new queue has {ok.method.message_count} messages")
    ch.queue_bind(queue, exchange, routing_key=ROUTING_KEY)
    step(f"declared exchange and queue {queue}, bound with key {ROUTING_KEY!r}")

    for n in (1, 2, 3):
        publish_confirmed(ch, exchange, f"m{n}".encode(), n)
    step("published m1..m3, each confirmed with basic.ack")
    ok = ch.queue_declare(queue, passive=True)
    check(ok.method.message_count == 3, f"passive declare: {ok.method.message_count} messages, want 3")

    consume_with_nack(conn, ch, queue, deadline)
    get_messages(ch, queue, exchange)
    mandatory_return(ch, exchange)
    sender_selected(conn, queue)
    tx_return_at_commit(conn)
    user_id_refused(conn, queue)

    ok = ch.queue_delete(queue)
    check(ok.method.message_count == 0, f"queue.delete-ok: {ok.method.message_count} messages, want 0")
    ch.exchange_delete(exchange)
    ch.close()
    conn.close()
    check(conn.is_closed, "connection not closed after close()")
    step("deleted queue and exchange, closed channel and connection")


def main():
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(float(os.environ.get("SMOKE_TIMEOUT", "60"))))
    try:
        run(url)
    except Mismatch as e:
        print(f"smoke.py: FAIL: {e}", file=sys.stderr, flush=True)
        return 1
    except pika.exceptions.AMQPError as e:
        print(f"smoke.py: FAIL: AMQP error: {e!r}", file=sys.stderr, flush=True)
        return 1
    except OSError as e:
        print(f"smoke.py: FAIL: {e!r}", file=sys.stderr, flush=True)
        return 1
    print("smoke.py: PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
