// /queues/{vhost}/{name}/messages/{id} : one message, read without
// consuming: properties, headers, x-death as a history in words, the body
// as pretty JSON, text or hex; edit, redrive, delete.
import { get, call, enc, session } from '../api.js';
import { h, replace, num, when, ago, loading, failure, toast, confirmDialog, field, empty } from '../dom.js';
import { navigate } from '../app.js';
import { redrivePanel } from './redrive.js';

export default async function message(main, vhost, name, id) {
  const base = `/api/queues/${enc(vhost)}/${enc(name)}/messages/${enc(id)}`;
  const qurl = `/queues/${enc(vhost)}/${enc(name)}`;
  replace(main, h('p', { class: 'crumbs' }, h('a', { href: '/queues' }, 'Queues'), ' › ', h('a', { href: qurl }, name), ` (vhost “${vhost}”)`),
    h('h1', {}, `Message #${id}`), loading('the message'));
  let m;
  try {
    m = await get(base);
  } catch (e) {
    main.lastChild.replaceWith(e.status === 404 ? empty(`Message #${id} is no longer in ${name} (consumed, moved or deleted).`) : failure('the message', e));
    return;
  }
  const tasks = h('div', { class: 'tasks' });
  const props = { ...m.properties };
  const headers = props.headers || {};
  delete props.headers;
  const deaths = Array.isArray(headers['x-death']) ? headers['x-death'] : [];
  const otherHeaders = Object.entries(headers).filter(([k]) => k !== 'x-death');
  main.lastChild.replaceWith(h('div', {},
    h('div', { class: 'facts' },
      fact('State', m.state), fact('Delivered', `${num(m.delivery_count)} time(s)`),
      fact('Exchange', m.exchange || '(default)'), fact('Routing key', m.routing_key),
      fact('Size', `${num(m.payload_bytes)} bytes`), m.ready_at ? fact('Ready at', when(m.ready_at)) : null),
    tasks,
    session.can_manage ? actions(vhost, name, qurl, base, m, tasks) : null,
    h('section', { class: 'card history' }, h('h2', {}, 'Why it died (x-death)'),
      deaths.length ? h('ol', { class: 'deaths' }, deaths.map(deathLine)) : empty('This message has no dead-letter history.')),
    h('div', { class: 'columns' },
      h('section', { class: 'card' }, h('h2', {}, 'Properties'), kv(Object.entries(props))),
      h('section', { class: 'card' }, h('h2', {}, 'Headers'), otherHeaders.length ? kv(otherHeaders) : empty('No other headers.'))),
    bodyView(m),
    session.can_manage ? editor(base, m, vhost, name) : null));
}

const fact = (k, v) => h('div', {}, h('span', {}, k), h('b', {}, v));
const kv = (entries) => entries.length
  ? h('dl', {}, entries.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'object' || v === '' ? JSON.stringify(v) : String(v))]))
  : empty('None.');

// deathLine says one x-death entry in words.
function deathLine(d) {
  const keys = d['routing-keys'] || [];
  const t = d.time ? (typeof d.time === 'number' ? new Date(d.time * 1000) : new Date(d.time)) : null;
  const why = { rejected: 'rejected by a consumer', expired: 'expired (TTL)', maxlen: 'dropped by the length limit',
    delivery_limit: 'over its delivery limit', invalid: 'refused by the queue\'s schema' }[d.reason] || d.reason;
  return h('li', { class: 'death' },
    h('b', {}, `In queue ${d.queue}`), `: ${why}, `, h('b', {}, `${num(d.count)} time(s)`),
    t ? `, last on ${when(t.toISOString())} (${ago(t.toISOString())})` : '',
    `. It had come through exchange “${d.exchange || '(default)'}” with routing key ${keys.map((k) => `“${k}”`).join(', ') || '“”'}.`);
}

function bodyView(m) {
  const raw = m.payload_encoding === 'base64' ? atob(m.payload) : m.payload;
  let json = null;
  if (m.payload_encoding !== 'base64') { try { json = JSON.stringify(JSON.parse(m.payload), null, 2); } catch { /* not JSON */ } }
  const hex = [...raw.slice(0, 4096)].map((c) => c.charCodeAt(0).toString(16).padStart(2, '0'))
    .join(' ').replace(/((?:\S\S ){16})/g, '$1\n');
  const views = { json, text: m.payload_encoding === 'base64' ? null : m.payload, hex };
  const pre = h('pre', { class: 'body', id: 'message-body' });
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const show = (k) => {
    pre.textContent = views[k];
    for (const b of tabs.children) b.setAttribute('aria-selected', String(b.dataset.view === k));
  };
  for (const [k, v] of Object.entries(views)) {
    if (v === null) continue;
    tabs.append(h('button', { type: 'button', role: 'tab', dataset: { view: k }, onclick: () => show(k) }, { json: 'JSON', text: 'Text', hex: 'Hex' }[k]));
  }
  show(json !== null ? 'json' : views.text !== null ? 'text' : 'hex');
  return h('section', { class: 'card' }, h('h2', {}, 'Body'), tabs, pre);
}

function actions(vhost, name, qurl, base, m, tasks) {
  return h('div', { class: 'toolbar' },
    h('button', { type: 'button', class: 'primary', 'data-action': 'redrive-one', onclick: () => redrivePanel(tasks, vhost, name, { ids: [m.id] }) }, 'Redrive…'),
    h('button', { type: 'button', class: 'danger', 'data-action': 'delete-one', onclick: async () => {
      if (!await confirmDialog({ title: `Delete message #${m.id}?`, body: 'It is removed for good.', confirm: 'Delete', danger: true })) return;
      try { await call('DELETE', base); toast(`Deleted message #${m.id}.`); navigate(qurl); } catch (x) { toast(`Delete refused: ${x.message}`, 'error'); }
    } }, 'Delete…'));
}

// editor edits body, headers and properties in place; a schema error is
// shown at the field it names.
function editor(base, m, vhost, queue) {
  const body = h('textarea', { name: 'edit-body', rows: 8, spellcheck: 'false', 'aria-describedby': 'edit-body-error' },
    m.payload_encoding === 'base64' ? '' : prettyOr(m.payload));
  const bodyErr = h('p', { class: 'field-error', role: 'alert', id: 'edit-body-error' });
  const props = h('textarea', { name: 'edit-properties', rows: 6, spellcheck: 'false' }, JSON.stringify(m.properties, null, 2));
  const propsErr = h('p', { class: 'field-error', role: 'alert' });
  const err = h('p', { class: 'field-error', role: 'alert' });
  const binary = m.payload_encoding === 'base64';
  const form = h('form', { class: 'card edit' }, h('h2', {}, 'Edit'),
    binary ? h('p', { class: 'hint' }, 'The body is binary; it can be replaced, not edited as text.') : null,
    field('Body', body), bodyErr, field('Properties and headers (JSON)', props), propsErr, err,
    h('button', { type: 'submit', class: 'primary', 'data-action': 'save-edit' }, 'Save'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    bodyErr.textContent = propsErr.textContent = err.textContent = '';
    body.removeAttribute('aria-invalid');
    const edit = {};
    if (!binary || body.value) { edit.payload = body.value; edit.payload_encoding = 'string'; }
    let p;
    try { p = JSON.parse(props.value); } catch (x) { propsErr.textContent = `Not JSON: ${x.message}`; return; }
    if (JSON.stringify(p) !== JSON.stringify(m.properties)) edit.properties = p;
    if (edit.payload !== undefined && !await schemaOK(vhost, queue, m, edit.payload, bodyErr)) {
      body.setAttribute('aria-invalid', 'true');
      body.focus();
      return;
    }
    if (!await confirmDialog({ title: `Save message #${m.id}?`, body: 'The message keeps its place in the queue.', confirm: 'Save' })) return;
    try {
      await call('PUT', base, edit);
      toast(`Saved message #${m.id}.`);
      navigate(location.pathname, true);
    } catch (x) {
      if (x.errors.length) {
        body.setAttribute('aria-invalid', 'true');
        bodyErr.replaceChildren(h('span', {}, 'The queue\'s schema refuses this body:'),
          h('ul', {}, x.errors.map((v) => h('li', {}, `${v.pointer || '(the whole body)'}: ${v.message}`))));
      } else {
        err.textContent = x.message;
      }
    }
  });
  return form;
}

// schemaOK checks body against the x-schema of the message's queue and of
// the queue it died in (where a redrive takes it), and shows what fails.
async function schemaOK(vhost, queue, m, body, out) {
  const names = new Set();
  for (const q of new Set([queue, m.death && m.death.queue].filter(Boolean))) {
    try {
      const info = await get(`/api/queues/${enc(vhost)}/${enc(q)}`);
      const s = (info.arguments || {})['x-schema'];
      if (s) names.add(s);
    } catch { /* a queue that is gone has no schema to meet */ }
  }
  for (const s of names) {
    try {
      await call('POST', `/api/schemas/${enc(vhost)}/${enc(s)}/validate`, { payload: body, payload_encoding: 'string' });
    } catch (x) {
      out.replaceChildren(h('span', {}, `The body does not match schema “${s}”: `),
        h('ul', {}, (x.errors.length ? x.errors : [{ pointer: '', message: x.message }]).map((v) =>
          h('li', { dataset: { pointer: v.pointer } }, `${v.pointer || '(the whole body)'}: ${v.message}`))));
      return false;
    }
  }
  return true;
}

function prettyOr(s) {
  try { return JSON.stringify(JSON.parse(s), null, 2); } catch { return s; }
}
