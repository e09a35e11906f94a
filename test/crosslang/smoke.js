#!/usr/bin/env node
// Cross-language smoke test of an AMQP 0-9-1 broker with npm's amqplib (pinned in
// package-lock.json; install with `npm ci` in this directory).
//
// Connects to AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/) and walks through what
// every client does: declare an exchange and a queue, bind, publish with publisher
// confirms, consume with manual acks, nack with requeue and see the redelivery, basic.get
// (and get-empty), a mandatory publish that comes back as basic.return, and a clean close.
//
// Prints one line per step and exits 0 when the broker behaved as RabbitMQ does; on any
// mismatch it prints "FAIL: ..." and exits 1. The whole run is bounded by SMOKE_TIMEOUT
// seconds (default 60).
'use strict';

const crypto = require('node:crypto');
const amqp = require('amqplib');

const LANG = 'node';
const ROUTING_KEY = 'smoke';
const TIMEOUT_S = Number(process.env.SMOKE_TIMEOUT || '60');

class Mismatch extends Error {}

function check(cond, what) {
  if (!cond) throw new Mismatch(what);
}

function step(msg) {
  console.log(`smoke.js: ok: ${msg}`);
}

function props(n) {
  return {
    contentType: 'text/plain',
    deliveryMode: 2,
    messageId: `m${n}`,
    headers: { 'x-smoke-lang': LANG, n },
    mandatory: true,
  };
}

// within rejects with a Mismatch if p has not settled after ms milliseconds.
function within(ms, what, p) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Mismatch(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

// publishConfirmed publishes one message and resolves when the broker confirms it; a nack
// (the callback's error) is a mismatch.
function publishConfirmed(ch, exchange, routingKey, body, n) {
  return within(10000, `confirm of ${body}`, new Promise((resolve, reject) => {
    ch.publish(exchange, routingKey, Buffer.from(body), props(n), (err) => {
      if (err) reject(new Mismatch(`publish ${body}: broker nacked the confirm`));
      else resolve();
    });
  }));
}

// consumeWithNack consumes m1..m3: acks m1 and m3, nacks m2 with requeue, then acks its
// redelivery, which must carry redelivered=true.
async function consumeWithNack(ch, queue) {
  const seen = new Map(); // body -> redelivered flags in arrival order
  const want = { m1: [false], m2: [false, true], m3: [false] };
  let finish;
  const done = new Promise((resolve, reject) => { finish = { resolve, reject }; });
  const complete = () => Object.keys(want).every(
    (k) => JSON.stringify(seen.get(k) || []) === JSON.stringify(want[k]));

  const onMessage = (msg) => {
    if (msg === null) {
      finish.reject(new Mismatch('consumer cancelled by the broker'));
      return;
    }
    try {
      const body = msg.content.toString();
      const flags = seen.get(body) || [];
      flags.push(msg.fields.redelivered);
      seen.set(body, flags);
      check(body in want, `unexpected delivery ${JSON.stringify(body)}`);
      check(flags.length > 1 || !msg.fields.redelivered,
        `first delivery of ${body} has redelivered=true`);
      const h = msg.properties.headers || {};
      check(h['x-smoke-lang'] === LANG, `${body}: headers did not round-trip: ${JSON.stringify(h)}`);
      check(msg.properties.messageId === body,
        `${body}: message_id ${msg.properties.messageId}, want ${body}`);
      if (body === 'm2' && flags.length === 1) {
        ch.nack(msg, false, true);
        return;
      }
      check(flags.length === 1 || (body === 'm2' && flags.length === 2 && msg.fields.redelivered),
        `${body}: unexpected delivery #${flags.length} redelivered=${msg.fields.redelivered}`);
      ch.ack(msg);
      if (complete()) finish.resolve();
    } catch (e) {
      finish.reject(e);
    }
  };

  await ch.prefetch(1);
  const { consumerTag } = await ch.consume(queue, onMessage, { noAck: false });
  check(typeof consumerTag === 'string' && consumerTag.length > 0,
    'basic.consume-ok with an empty consumer tag');
  await within(15000, `consume (deliveries so far ${JSON.stringify([...seen])})`, done);
  const ok = await ch.cancel(consumerTag);
  check(ok && ok.consumerTag === consumerTag, `basic.cancel-ok for ${JSON.stringify(ok)}`);
  step('consumed m1..m3, nack+requeue of m2 came back with redelivered=true, acked');
}

async function getMessages(ch, queue, exchange) {
  let m = await ch.get(queue, { noAck: false });
  check(m === false, `basic.get on empty queue returned a message, want get-empty`);
  step('basic.get on an empty queue gives get-empty');

  await publishConfirmed(ch, exchange, ROUTING_KEY, 'm4', 4);
  await publishConfirmed(ch, exchange, ROUTING_KEY, 'm5', 5);
  const m4 = await ch.get(queue, { noAck: false });
  check(m4 !== false, 'basic.get: got get-empty, want m4');
  check(m4.content.toString() === 'm4', `basic.get body ${m4.content}, want m4`);
  check(m4.fields.messageCount === 1, `basic.get m4: message_count ${m4.fields.messageCount}, want 1`);
  check(m4.fields.redelivered === false, 'basic.get m4: redelivered=true, want false');
  check(m4.properties.contentType === 'text/plain', `basic.get m4: content_type ${m4.properties.contentType}`);
  const m5 = await ch.get(queue, { noAck: false });
  check(m5 !== false && m5.content.toString() === 'm5', 'basic.get: want m5');
  check(m5.fields.messageCount === 0, `basic.get m5: message_count ${m5.fields.messageCount}, want 0`);
  check(m5.fields.deliveryTag > m4.fields.deliveryTag, 'basic.get: delivery tags do not increase');
  ch.ack(m5, true);
  m = await ch.get(queue, { noAck: false });
  check(m === false, 'basic.get after ack(multiple) of both: want get-empty');
  step('basic.get returned m4 (message_count 1) and m5 (0); ack multiple emptied the queue');
}

async function mandatoryReturn(ch, exchange) {
  const returned = within(10000, 'basic.return of a mandatory unroutable publish',
    new Promise((resolve) => ch.once('return', resolve)));
  // RabbitMQ confirms an unroutable mandatory message (after returning it).
  await publishConfirmed(ch, exchange, 'no-such-route', 'lost', 6);
  const r = await returned;
  check(r.fields.replyCode === 312, `basic.return reply_code ${r.fields.replyCode}, want 312`);
  check(r.fields.replyText === 'NO_ROUTE', `basic.return reply_text ${r.fields.replyText}`);
  check(r.fields.exchange === exchange, `basic.return exchange ${r.fields.exchange}`);
  check(r.fields.routingKey === 'no-such-route', `basic.return routing_key ${r.fields.routingKey}`);
  check(r.content.toString() === 'lost', `basic.return body ${r.content}`);
  step('mandatory unroutable publish came back as basic.return 312 NO_ROUTE and was confirmed');
}

async function run(url) {
  const conn = await within(15000, 'connect', amqp.connect(url, {
    timeout: 10000,
    clientProperties: { connection_name: 'sluice-crosslang-node' },
  }));
  let connErr = null;
  conn.on('error', (e) => { connErr = e; });
  const u = new URL(url);
  step(`connected to ${u.hostname}:${u.port || 5672}`);
  const ch = await conn.createConfirmChannel();
  ch.on('error', (e) => { connErr = e; });
  step('channel open in confirm mode');

  const suffix = crypto.randomBytes(4).toString('hex');
  const exchange = `sluice.smoke.${LANG}.${suffix}`;
  const queue = `sluice.smoke.${LANG}.${suffix}`;
  await ch.assertExchange(exchange, 'direct', { durable: false, autoDelete: false });
  let ok = await ch.assertQueue(queue, { durable: false, exclusive: false, autoDelete: false });
  check(ok.queue === queue, `queue.declare-ok names ${ok.queue}, want ${queue}`);
  check(ok.messageCount === 0, `new queue has ${ok.messageCount} messages`);
  await ch.bindQueue(queue, exchange, ROUTING_KEY);
  step(`declared exchange and queue ${queue}, bound with key '${ROUTING_KEY}'`);

  for (const n of [1, 2, 3]) await publishConfirmed(ch, exchange, ROUTING_KEY, `m${n}`, n);
  step('published m1..m3, each confirmed with basic.ack');
  ok = await ch.checkQueue(queue);
  check(ok.messageCount === 3, `passive declare: ${ok.messageCount} messages, want 3`);

  await consumeWithNack(ch, queue);
  await getMessages(ch, queue, exchange);
  await mandatoryReturn(ch, exchange);

  ok = await ch.deleteQueue(queue);
  check(ok.messageCount === 0, `queue.delete-ok: ${ok.messageCount} messages, want 0`);
  await ch.deleteExchange(exchange);
  await ch.close();
  const closed = new Promise((resolve) => conn.once('close', resolve));
  await conn.close();
  await within(5000, 'connection close', closed);
  check(connErr === null, `connection or channel error: ${connErr}`);
  step('deleted queue and exchange, closed channel and connection');
}

async function main() {
  const url = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/';
  const hard = setTimeout(() => {
    console.error('smoke.js: FAIL: timed out (SMOKE_TIMEOUT)');
    process.exit(2);
  }, TIMEOUT_S * 1000);
  try {
    await run(url);
  } catch (e) {
    const what = e instanceof Mismatch ? e.message : (e && e.stack) || String(e);
    console.error(`smoke.js: FAIL: ${what}`);
    process.exit(1);
  }
  clearTimeout(hard);
  console.log('smoke.js: PASS');
}

main();
