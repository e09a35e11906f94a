// Redrive: choose where to (each message's origin, or a queue), a rate
// and a dry run; a running redrive shows a progress bar (moved, total,
// rate, time left) that comes back after a reload (the task's id is in
// the URL, and the queue's running tasks are listed) and can be cancelled.
import { get, call, enc } from '../api.js';
import { h, replace, num, field, toast } from '../dom.js';

// redrivePanel opens the redrive dialog for sel: {ids} or {filter, all}.
export function redrivePanel(tasksEl, vhost, name, sel) {
  const what = sel.ids ? `${sel.ids.length} selected message(s)` : (Object.keys(sel.filter).length
    ? `every message matching ${Object.entries(sel.filter).map(([k, v]) => `${k} = “${v}”`).join(', ')}` : 'every message of the queue');
  const origin = h('input', { type: 'radio', name: 'dest', value: 'origin', checked: true });
  const other = h('input', { type: 'radio', name: 'dest', value: 'queue' });
  const target = h('input', { name: 'target', placeholder: 'queue name', 'aria-label': 'Target queue' });
  const rate = h('input', { name: 'rate', type: 'number', min: 0, value: 0, 'aria-label': 'Rate limit' });
  const result = h('div', { class: 'dry-run', 'aria-live': 'polite' });
  const err = h('p', { class: 'field-error', role: 'alert' });
  const body = (dry) => {
    const b = { rate: Number(rate.value) || 0, dry_run: dry };
    if (sel.ids) b.ids = sel.ids;
    else if (Object.keys(sel.filter).length) b.filter = sel.filter;
    if (other.checked) b.target = target.value;
    return b;
  };
  const start = async (dry) => {
    err.textContent = '';
    if (other.checked && !target.value) { err.textContent = 'Name the queue to send them to.'; return null; }
    try {
      return await call('POST', `/api/queues/${enc(vhost)}/${enc(name)}/redrive`, body(dry));
    } catch (x) {
      err.textContent = x.message;
      return null;
    }
  };
  const dlg = h('dialog', { class: 'dialog redrive' });
  const dryBtn = h('button', { type: 'button', 'data-action': 'dry-run' }, 'Dry run');
  const goBtn = h('button', { type: 'button', class: 'primary', 'data-action': 'start-redrive' }, 'Redrive');
  dryBtn.addEventListener('click', async () => {
    replace(result, 'Counting…');
    let t = await start(true);
    if (!t) { replace(result); return; }
    while (t.state === 'running') { await pause(300); t = await get(`/api/tasks/${t.id}`); }
    const by = {};
    for (const m of t.moves || []) by[m.to] = (by[m.to] || 0) + 1;
    const lines = Object.entries(by).map(([to, n]) => h('li', {}, `${num(n)} to ${to}`));
    replace(result, h('p', {}, `Dry run: ${num(t.total)} message(s) would move${t.failed ? `, ${num(t.failed)} could not` : ''}.`),
      lines.length ? h('ul', {}, lines) : null,
      (t.errors || []).length ? h('ul', { class: 'errors' }, t.errors.slice(0, 10).map((e) => h('li', {}, `#${e.id}: ${e.reason}`))) : null);
  });
  goBtn.addEventListener('click', async () => {
    // One click, one redrive: the buttons wait for the broker's answer.
    goBtn.disabled = dryBtn.disabled = true;
    const t = await start(false);
    goBtn.disabled = dryBtn.disabled = false;
    if (!t) return;
    dlg.close();
    toast(`Redrive started: ${num(t.total)} message(s).`);
    const u = new URL(location.href);
    u.searchParams.set('task', t.id);
    history.replaceState(null, '', u);
    follow(tasksEl, t);
  });
  replace(dlg, h('form', { method: 'dialog' },
    h('h2', {}, 'Redrive'), h('p', {}, `Move ${what}.`),
    sel.state && sel.state !== 'ready' ? h('p', { class: 'hint' }, `Only ready messages are redriven; ${sel.state} ones stay until they are ready.`) : null,
    h('fieldset', {}, h('legend', {}, 'To'),
      h('label', { class: 'check' }, origin, ' the queue each one died in'),
      h('label', { class: 'check' }, other, ' this queue: ', target)),
    field('Rate limit (messages per second, 0 for no limit)', rate), err, result,
    h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: () => dlg.close() }, 'Cancel'), dryBtn, goBtn)));
  target.addEventListener('focus', () => { other.checked = true; });
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

// resumeTasks shows the queue's running redrives and the one in the URL.
export async function resumeTasks(el, vhost, name) {
  const want = new URLSearchParams(location.search).get('task');
  let ts;
  try { ts = await get('/api/tasks'); } catch { return; }
  for (const t of ts) {
    if (t.dry_run || t.vhost !== vhost || t.queue !== name) continue;
    if (t.state === 'running' || t.id === want) follow(el, t);
  }
}

// follow draws a task's progress and polls it until it ends.
function follow(el, t) {
  const bar = h('progress', { max: Math.max(1, t.total), value: t.done });
  const text = h('span', { class: 'progress-text' });
  const cancel = h('button', { type: 'button', class: 'danger', 'data-action': 'cancel-task' }, 'Cancel');
  const box = h('section', { class: 'card task', dataset: { task: t.id, state: t.state }, 'aria-live': 'polite' },
    h('h2', {}, `Redrive ${t.id.slice(0, 6)}`), bar, text, cancel);
  el.append(box);
  let last = { at: Date.now(), done: t.done }, shownRate = 0;
  cancel.addEventListener('click', async () => {
    try { await call('DELETE', `/api/tasks/${t.id}`); } catch (x) { toast(`Could not cancel: ${x.message}`, 'error'); }
  });
  const draw = () => {
    bar.max = Math.max(1, t.total);
    bar.value = t.done;
    const started = new Date(t.created).getTime();
    const end = t.finished ? new Date(t.finished).getTime() : Date.now();
    const secs = Math.max(0.001, (end - started) / 1000);
    shownRate = t.done / secs;
    const left = t.total - t.done;
    const remaining = t.state === 'running' && shownRate > 0 ? `${Math.ceil(left / shownRate)} s left` : '';
    const state = { running: 'running', done: 'finished', cancelled: 'cancelled', failed: 'failed' }[t.state] || t.state;
    text.textContent = `${num(t.moved)} moved of ${num(t.total)}${t.failed ? `, ${num(t.failed)} failed` : ''} · ${shownRate.toFixed(1)}/s · ${remaining || state}`;
    box.dataset.state = t.state;
    box.dataset.moved = t.moved;
    box.dataset.total = t.total;
    cancel.hidden = t.state !== 'running';
    if (t.error) text.textContent += ` · ${t.error}`;
    if ((t.errors || []).length) box.append(h('ul', { class: 'errors' }, t.errors.slice(0, 10).map((e) => h('li', {}, `#${e.id}: ${e.reason}`))));
  };
  draw();
  const poll = async () => {
    if (!box.isConnected) return;
    try { t = await get(`/api/tasks/${t.id}`); } catch (x) { text.textContent = `Could not read the task: ${x.message}`; }
    draw();
    last = { at: Date.now(), done: t.done };
    if (t.state === 'running') setTimeout(poll, 500);
    else toast(`Redrive ${t.state === 'done' ? 'finished' : t.state}: ${num(t.moved)} moved${t.failed ? `, ${num(t.failed)} failed` : ''}.`, t.failed || t.state !== 'done' ? 'error' : 'ok');
  };
  if (t.state === 'running') setTimeout(poll, 500);
}
