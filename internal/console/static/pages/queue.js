// /queues/{vhost}/{name} : the queue's facts, arguments, depth over time,
// consumers, bindings, and the message browser (reads without consuming),
// with the actions on a selection or on everything the filter matches.
import { get, call, enc, session } from '../api.js';
import { h, replace, num, when, ago, loading, empty, failure, toast, every, confirmDialog, field, table } from '../dom.js';
import { LineChart } from '../chart.js';
import { navigate } from '../app.js';
import { redrivePanel, resumeTasks } from './redrive.js';

export const FILTERS = ['state', 'reason', 'source', 'header', 'body'];

export default async function queue(main, vhost, name) {
  const base = `/api/queues/${enc(vhost)}/${enc(name)}`;
  const facts = h('div', { class: 'facts' }, loading('the queue'));
  const charts = h('div', { class: 'charts' });
  const details = h('div', { class: 'columns' });
  const browser = h('section', { class: 'browser', 'aria-label': 'Messages' });
  const tasks = h('div', { class: 'tasks' });
  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '/queues' }, 'Queues'), ` › vhost “${vhost}”`),
    h('h1', {}, name), facts, tasks, charts,
    session.can_manage ? queueActions(vhost, name, base) : null,
    browser, details);
  const depth = new LineChart(charts, {
    title: 'Depth over time', format: num,
    series: [{ key: 'ready', label: 'ready' }, { key: 'unacked', label: 'unacked' }, { key: 'delayed', label: 'delayed' }],
  });
  let first = true;
  every(2000, async () => {
    let q;
    try {
      q = await get(base);
    } catch (e) {
      replace(facts, failure('the queue', e));
      return;
    }
    depth.push({ ready: q.messages_ready, unacked: q.messages_unacknowledged, delayed: q.messages_delayed });
    replace(facts,
      fact('Ready', num(q.messages_ready), 'q-ready'), fact('Unacked', num(q.messages_unacknowledged), 'q-unacked'),
      fact('Delayed', num(q.messages_delayed), 'q-delayed'), fact('Consumers', num(q.consumers), 'q-consumers'),
      fact('Type', q.type), fact('Durable', q.durable ? 'yes' : 'no'));
    if (first) {
      first = false;
      showDetails(details, vhost, name, q);
    }
  });
  resumeTasks(tasks, vhost, name);
  await browse(browser, vhost, name, base, tasks);
}

const fact = (k, v, id) => h('div', {}, h('span', {}, k), h('b', id ? { id } : {}, v));

async function showDetails(el, vhost, name, q) {
  const args = Object.entries(q.arguments || {});
  const argBox = h('section', { class: 'card' }, h('h2', {}, 'Arguments'),
    args.length ? h('dl', {}, args.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, JSON.stringify(v))])) : empty('No arguments.'));
  const cons = h('section', { class: 'card' }, h('h2', {}, 'Consumers'), loading('the consumers'));
  const binds = h('section', { class: 'card' }, h('h2', {}, 'Bindings'), loading('the bindings'));
  replace(el, argBox, cons, binds);
  get(`/api/consumers/${enc(vhost)}`).then((cs) => {
    const mine = cs.filter((c) => c.queue.name === name);
    replace(cons, h('h2', {}, 'Consumers'), mine.length
      ? table(['Tag', 'Channel', 'Ack', 'Prefetch'], mine.map((c) => h('tr', {},
        h('td', {}, c.consumer_tag), h('td', {}, c.channel_details.name), h('td', {}, c.ack_required ? 'manual' : 'auto'), h('td', {}, num(c.prefetch_count)))))
      : empty('No consumers.'));
  }, (e) => replace(cons, h('h2', {}, 'Consumers'), failure('the consumers', e)));
  get(`/api/queues/${enc(vhost)}/${enc(name)}/bindings`).then((bs) => {
    replace(binds, h('h2', {}, 'Bindings'), bs.length
      ? table(['From exchange', 'Routing key'], bs.map((b) => h('tr', {}, h('td', {}, b.source || '(default)'), h('td', {}, b.routing_key))))
      : empty('No bindings.'));
  }, (e) => replace(binds, h('h2', {}, 'Bindings'), failure('the bindings', e)));
}

// filterFromURL reads the browser's filter from the page's URL.
export function filterFromURL() {
  const q = new URLSearchParams(location.search);
  const f = {};
  for (const k of FILTERS) if (q.get(k)) f[k] = q.get(k);
  return f;
}

async function browse(el, vhost, name, base, tasks) {
  const q = new URLSearchParams(location.search);
  const f = filterFromURL();
  const after = q.get('after') || '';
  const inputs = {
    state: h('select', { name: 'state', 'aria-label': 'State' }, ['', 'ready', 'unacked', 'delayed'].map((s) =>
      h('option', { value: s, selected: f.state === s }, s || 'any state'))),
    reason: h('select', { name: 'reason', 'aria-label': 'Death reason' }, ['', 'rejected', 'expired', 'maxlen', 'delivery_limit', 'invalid'].map((s) =>
      h('option', { value: s, selected: f.reason === s }, s || 'any reason'))),
    source: h('input', { name: 'source', value: f.source || '', placeholder: 'source queue', 'aria-label': 'Source queue' }),
    header: h('input', { name: 'header', value: f.header || '', placeholder: 'header or header=value', 'aria-label': 'Header' }),
    body: h('input', { name: 'body', value: f.body || '', placeholder: 'text in the body', 'aria-label': 'Text in the body' }),
    after: h('input', { name: 'after', type: 'number', min: 0, value: after, placeholder: 'after message id', 'aria-label': 'Start after message id' }),
  };
  const form = h('form', { class: 'filters', role: 'search' }, Object.values(inputs),
    h('button', { type: 'submit' }, 'Filter'), h('a', { href: location.pathname }, 'Clear'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, i] of Object.entries(inputs)) if (i.value) p.set(k, i.value);
    navigate(location.pathname + (p.toString() ? '?' + p : ''));
  });
  const list = h('div', {}, loading('the messages'));
  const bar = h('div', { class: 'toolbar selection' });
  replace(el, h('h2', {}, 'Messages'), h('p', { class: 'hint' }, 'Browsing reads messages without consuming them.'), form, bar, list);

  const p = new URLSearchParams({ limit: 50 });
  if (after) p.set('after', after);
  for (const k of FILTERS) if (f[k]) p.set(k, f[k]);
  let page;
  try {
    page = await get(`${base}/messages?${p}`);
  } catch (e) {
    replace(list, e.status === 403 ? empty(`You may see this queue but not read its messages: ${e.message}`) : failure('the messages', e));
    return;
  }
  const msgs = page.messages;
  const selected = new Set();
  const count = h('span', { class: 'count' }, '');
  const updateCount = () => { count.textContent = selected.size ? `${selected.size} selected` : 'Select messages to act on them, or act on all that match.'; };
  updateCount();
  if (session.can_manage) {
    replace(bar, count,
      h('button', { type: 'button', 'data-action': 'redrive-selected', onclick: () => selected.size && redrivePanel(tasks, vhost, name, { ids: [...selected] }) }, 'Redrive selected'),
      h('button', { type: 'button', 'data-action': 'redrive-matching', onclick: () => redrivePanel(tasks, vhost, name, { filter: apiFilter(f), all: true, state: f.state }) }, 'Redrive all matching'),
      h('button', { type: 'button', class: 'danger', 'data-action': 'delete-selected', onclick: () => deleteIDs(base, [...selected]) }, 'Delete selected'),
      h('button', { type: 'button', class: 'danger', 'data-action': 'delete-matching', onclick: () => deleteMatching(base, f) }, 'Delete all matching'));
  }
  if (msgs.length === 0) {
    replace(list, empty(page.more ? 'No message on this stretch of the queue matches; look further on.' :
      (Object.keys(f).length ? 'No message matches this filter.' : 'The queue is empty.')), pager(page, after));
    return;
  }
  const all = h('input', { type: 'checkbox', 'aria-label': 'Select all on this page' });
  const boxes = [];
  all.addEventListener('change', () => { for (const b of boxes) { b.checked = all.checked; b.dispatchEvent(new Event('change')); } });
  const rows = msgs.map((m) => {
    const box = h('input', { type: 'checkbox', 'aria-label': `Select message ${m.id}`, value: m.id });
    boxes.push(box);
    box.addEventListener('change', () => { if (box.checked) selected.add(m.id); else selected.delete(m.id); updateCount(); });
    const d = m.death;
    return h('tr', { dataset: { id: m.id } },
      session.can_manage ? h('td', {}, box) : null,
      h('td', {}, h('a', { href: `/queues/${enc(vhost)}/${enc(name)}/messages/${m.id}` }, `#${m.id}`)),
      h('td', {}, h('span', { class: `badge ${m.state}` }, m.state)),
      h('td', {}, d ? d.reason : '–'), h('td', {}, d ? d.queue : '–'), h('td', { class: 'n' }, d ? num(d.count) : '–'),
      h('td', { title: d ? when(d.time) : '' }, d ? ago(d.time) : '–'),
      h('td', { class: 'preview' }, preview(m)));
  });
  replace(list, h('div', { class: 'table-wrap' }, h('table', { class: 'messages' },
    h('thead', {}, h('tr', {}, session.can_manage ? h('th', {}, all) : null,
      ['Id', 'State', 'Reason', 'Died in', 'Deaths', 'When', 'Body'].map((c) => h('th', {}, c)))),
    h('tbody', {}, rows))), pager(page, after));
}

export function apiFilter(f) {
  const out = {};
  for (const k of ['reason', 'source', 'header', 'body']) if (f[k]) out[k] = f[k];
  return out;
}

function preview(m) {
  if (m.payload_encoding === 'base64') return `(${num(m.payload_bytes)} bytes of binary)`;
  return m.payload.length > 120 ? m.payload.slice(0, 120) + '…' : m.payload;
}

function pager(page, after) {
  const here = new URLSearchParams(location.search);
  const links = [];
  if (after) {
    here.delete('after');
    links.push(h('a', { href: location.pathname + (here.toString() ? '?' + here : '') }, '« From the head'));
  }
  if (page.more) {
    const n = new URLSearchParams(location.search);
    n.set('after', page.next);
    links.push(h('a', { href: location.pathname + '?' + n, rel: 'next' }, 'Next page ›'));
  }
  return links.length ? h('nav', { class: 'pager' }, links) : null;
}

async function deleteIDs(base, ids) {
  if (!ids.length) { toast('Select messages first.', 'error'); return; }
  if (!await confirmDialog({ title: `Delete ${ids.length} message(s)?`, body: 'They are removed for good.', confirm: 'Delete', danger: true })) return;
  // A few requests at a time, with the count shown, so a long selection
  // neither floods the broker nor leaves the page looking stuck.
  let ok = 0, failed = 0, next = 0;
  const progress = h('div', { class: 'toast', role: 'status' });
  document.getElementById('toast').append(progress);
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++];
      try { await call('DELETE', `${base}/messages/${id}`); ok++; } catch { failed++; }
      progress.textContent = `Deleting: ${num(ok + failed)} of ${num(ids.length)}…`;
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, ids.length) }, worker));
  progress.remove();
  toast(`Deleted ${ok} message(s)${failed ? `; ${failed} could not be deleted (gone or being delivered)` : ''}.`, failed ? 'error' : 'ok');
  navigate(location.pathname + location.search, true);
}

// deleteMatching collects every id the filter matches, then deletes them.
async function deleteMatching(base, f) {
  const ids = [];
  let after = 0;
  const finding = h('div', { class: 'toast', role: 'status' }, 'Finding the messages that match…');
  document.getElementById('toast').append(finding);
  try {
    await collect();
  } catch (x) {
    toast(`Could not list the matching messages: ${x.message}`, 'error');
    return;
  } finally {
    finding.remove();
  }
  if (!ids.length) { toast('No message matches the filter.', 'error'); return; }
  await deleteIDs(base, ids);

  async function collect() {
    for (;;) {
      const p = new URLSearchParams({ limit: 1000, after });
      for (const k of FILTERS) if (f[k]) p.set(k, f[k]);
      const page = await get(`${base}/messages?${p}`);
      for (const m of page.messages) ids.push(m.id);
      finding.textContent = `Finding the messages that match… ${num(ids.length)} so far`;
      if (!page.more || ids.length >= 100000) return;
      after = page.next;
    }
  }
}

function queueActions(vhost, name, base) {
  const rk = h('input', { name: 'routing_key', value: name });
  const payload = h('textarea', { name: 'payload', rows: 3 }, '{"test": true}');
  const delay = h('input', { name: 'delay', type: 'number', min: 0, value: 0 });
  const ct = h('input', { name: 'content_type', value: 'application/json' });
  const pub = h('form', { class: 'card action publish' }, h('h2', {}, 'Publish a test message'),
    h('p', { class: 'hint' }, 'Published to the default exchange with this queue as the routing key, unless you change it.'),
    field('Routing key', rk), field('Body', payload), field('Content type', ct), field('Delay (x-delay, ms)', delay),
    h('button', { type: 'submit', class: 'primary' }, 'Publish'));
  pub.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const r = await call('POST', `/api/exchanges/${enc(vhost)}/amq.default/publish`, {
        routing_key: rk.value, payload: payload.value, payload_encoding: 'string',
        properties: ct.value ? { content_type: ct.value } : {}, delay: Number(delay.value) || 0 });
      toast(r.routed ? `Published; ${Number(delay.value) ? `it becomes ready in ${delay.value} ms` : 'it is in the queue'}.` : 'Published, but no queue took it (unroutable).', r.routed ? 'ok' : 'error');
    } catch (x) { toast(`Publish refused: ${x.message}`, 'error'); }
  });
  const purge = h('button', { type: 'button', class: 'danger', 'data-action': 'purge', onclick: async () => {
    if (!await confirmDialog({ title: `Purge ${name}?`, body: 'Every ready message of the queue is deleted.', confirm: 'Purge', danger: true, mustType: name })) return;
    try { const r = await call('DELETE', `${base}/contents`); toast(`Purged ${num(r.message_count)} message(s) from ${name}.`); navigate(location.pathname, true); } catch (x) { toast(`Purge refused: ${x.message}`, 'error'); }
  } }, 'Purge…');
  const del = h('button', { type: 'button', class: 'danger', 'data-action': 'delete-queue', onclick: async () => {
    if (!await confirmDialog({ title: `Delete queue ${name}?`, body: 'The queue and its messages go.', confirm: 'Delete queue', danger: true, mustType: name })) return;
    try { await call('DELETE', base); toast(`Deleted queue ${name}.`); navigate('/queues'); } catch (x) { toast(`Delete refused: ${x.message}`, 'error'); }
  } }, 'Delete queue…');
  return h('details', { class: 'actions-box' }, h('summary', {}, 'Publish, purge, delete'), pub, h('div', { class: 'toolbar' }, purge, del));
}
