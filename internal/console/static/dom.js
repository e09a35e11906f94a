// Small DOM helpers: element building (text is always text, never HTML),
// page states in words, number and time formatting, dialogs and toasts.

export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids) {
    if (k === null || k === undefined || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
}

export const loading = (what) => h('p', { class: 'state loading' }, `Loading ${what}…`);
export const empty = (what) => h('p', { class: 'state empty' }, what);
export const failure = (what, err) =>
  h('p', { class: 'state error', role: 'alert' }, `Could not load ${what}: ${err.message}`);

// replace swaps a container's contents.
export function replace(el, ...kids) {
  el.replaceChildren();
  append(el, kids);
  return el;
}

export const num = (n) => (n === undefined || n === null ? '–' : Number(n).toLocaleString('en'));
export const rate = (r) => (r === undefined || r === null ? '–' : `${Number(r).toFixed(r < 10 ? 1 : 0)}/s`);

export function when(t) {
  if (!t) return '–';
  const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function ago(t) {
  if (!t) return '';
  const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
  if (s < 0) return 'in the future';
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export function bytes(n) {
  if (n === undefined || n === null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function toast(text, kind = 'ok') {
  const t = document.getElementById('toast');
  const item = h('div', { class: `toast ${kind}` }, text);
  t.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 12000 : 6000);
}

// confirmDialog shows a modal with body and resolves true when the
// person confirms. mustType, if given, must be typed exactly first.
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false, mustType }) {
  return new Promise((resolve) => {
    const input = mustType ? h('input', { class: 'confirm-type', 'aria-label': `Type ${mustType} to confirm`, autocomplete: 'off' }) : null;
    const ok = h('button', { type: 'submit', class: danger ? 'danger' : 'primary', disabled: !!mustType }, confirm);
    if (input) input.addEventListener('input', () => { ok.disabled = input.value !== mustType; });
    const dlg = h('dialog', { class: 'dialog' },
      h('form', { method: 'dialog' },
        h('h2', {}, title),
        h('div', {}, body),
        mustType ? h('label', {}, `Type `, h('code', {}, mustType), ` to confirm`, input) : null,
        h('div', { class: 'buttons' },
          h('button', { type: 'button', value: 'cancel', onclick: () => dlg.close('cancel') }, 'Cancel'),
          ok)));
    dlg.addEventListener('close', () => { resolve(dlg.returnValue !== 'cancel' && dlg.returnValue !== ''); dlg.remove(); });
    ok.addEventListener('click', (e) => { e.preventDefault(); dlg.close('ok'); });
    document.body.append(dlg);
    dlg.showModal();
    (input || ok).focus();
  });
}

// every runs fn now and then every ms while the page stays; the router
// stops it when the page changes.
const timers = new Set();
export function every(ms, fn) {
  fn();
  const id = setInterval(fn, ms);
  timers.add(id);
  return id;
}
export function stopTimers() {
  for (const id of timers) clearInterval(id);
  timers.clear();
}

// table builds a table from column headings and rows of cells.
export function table(cols, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs,
      h('thead', {}, h('tr', {}, cols.map((c) => (c instanceof Node ? h('th', {}, c) : h('th', {}, c))))),
      h('tbody', {}, rows)));
}

export function field(label, input, help) {
  return h('label', { class: 'field' }, h('span', {}, label), input, help ? h('small', {}, help) : null);
}
