// /queues : every queue, paged on the server (RabbitMQ's page, page_size,
// name, sort, sort_reverse), sortable and filterable by name; the URL
// carries the page's state. Declare a queue.
import { get, call, enc, session } from '../api.js';
import { h, replace, num, rate, loading, empty, failure, toast, field, every } from '../dom.js';
import { navigate } from '../app.js';

const COLS = [
  ['name', 'Name'], ['vhost', 'Vhost'], ['messages_ready', 'Ready'], ['messages_unacknowledged', 'Unacked'],
  ['messages_delayed', 'Delayed'], ['consumers', 'Consumers'],
  ['message_stats.publish_details.rate', 'In/s'], ['message_stats.deliver_get_details.rate', 'Out/s'],
];

export default async function queues(main) {
  const q = new URLSearchParams(location.search);
  const st = {
    name: q.get('name') || '', page: Math.max(1, Number(q.get('page')) || 1),
    page_size: Number(q.get('page_size')) || 50, sort: q.get('sort') || 'name', sort_reverse: q.get('sort_reverse') === 'true',
  };
  const url = (ch) => {
    const n = { ...st, ...ch };
    const p = new URLSearchParams();
    if (n.name) p.set('name', n.name);
    if (n.page > 1) p.set('page', n.page);
    if (n.page_size !== 50) p.set('page_size', n.page_size);
    if (n.sort !== 'name') p.set('sort', n.sort);
    if (n.sort_reverse) p.set('sort_reverse', 'true');
    const s = p.toString();
    return '/queues' + (s ? '?' + s : '');
  };
  const filter = h('input', { type: 'search', name: 'name', value: st.name, placeholder: 'Filter by name', 'aria-label': 'Filter queues by name' });
  let debounce;
  filter.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => navigate(url({ name: filter.value, page: 1 }), true), 300);
  });
  const body = h('div', {}, loading('the queues'));
  replace(main, h('h1', {}, 'Queues'), h('div', { class: 'toolbar' }, filter), body,
    session.can_manage ? declareForm() : null);

  const load = async () => {
    let res;
    try {
      const p = new URLSearchParams({ page: st.page, page_size: st.page_size, name: st.name, use_regex: 'false',
        sort: st.sort, sort_reverse: String(st.sort_reverse) });
      res = await get('/api/queues?' + p);
    } catch (e) {
      if (e.status === 400 && st.page > 1) { navigate(url({ page: 1 }), true); return; } // fewer pages now
      replace(body, failure('the queues', e));
      return;
    }
    if (Array.isArray(res)) res = pageLocally(res, st); // a server without paging
    if (res.filtered_count === 0) {
      replace(body, empty(st.name ? `No queue's name contains “${st.name}”.` : 'There are no queues yet.'));
      return;
    }
    const head = COLS.map(([k, label]) => {
      const cur = st.sort === k;
      return h('a', { href: url({ sort: k, sort_reverse: cur ? !st.sort_reverse : false, page: 1 }), class: cur ? 'sorted' : '' },
        label, cur ? (st.sort_reverse ? ' ▼' : ' ▲') : '');
    });
    const rows = res.items.map((x) => h('tr', { dataset: { queue: x.name } },
      h('td', {}, h('a', { href: `/queues/${enc(x.vhost)}/${enc(x.name)}` }, x.name)),
      h('td', {}, x.vhost), h('td', { class: 'n' }, num(x.messages_ready)), h('td', { class: 'n' }, num(x.messages_unacknowledged)),
      h('td', { class: 'n' }, num(x.messages_delayed)), h('td', { class: 'n' }, num(x.consumers)),
      h('td', { class: 'n' }, rate(pick(x, 'message_stats.publish_details.rate'))),
      h('td', { class: 'n' }, rate(pick(x, 'message_stats.deliver_get_details.rate')))));
    replace(body,
      h('p', { class: 'count' }, `${num(res.filtered_count)} of ${num(res.total_count)} queues · page ${res.page} of ${res.page_count}`),
      h('div', { class: 'table-wrap' }, h('table', { class: 'queues' }, h('thead', {}, h('tr', {}, head.map((a) => h('th', {}, a)))), h('tbody', {}, rows))),
      pager(res, url));
  };
  every(5000, load);
}

export function pick(o, path) {
  return path.split('.').reduce((v, k) => (v == null ? undefined : v[k]), o);
}

function pageLocally(all, st) {
  let items = all.filter((x) => !st.name || x.name.includes(st.name));
  const filtered = items.length;
  items.sort((a, b) => {
    const va = pick(a, st.sort), vb = pick(b, st.sort);
    const c = typeof va === 'string' ? String(va).localeCompare(String(vb)) : (va || 0) - (vb || 0);
    return st.sort_reverse ? -c : c;
  });
  const pages = Math.max(1, Math.ceil(filtered / st.page_size));
  items = items.slice((st.page - 1) * st.page_size, st.page * st.page_size);
  return { items, filtered_count: filtered, total_count: all.length, page: st.page, page_count: pages, page_size: st.page_size };
}

function pager(res, url) {
  if (res.page_count <= 1) return null;
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    res.page > 1 ? h('a', { href: url({ page: 1 }) }, '« First') : null,
    res.page > 1 ? h('a', { href: url({ page: res.page - 1 }) }, '‹ Previous') : null,
    h('span', {}, `Page ${res.page} of ${res.page_count}`),
    res.page < res.page_count ? h('a', { href: url({ page: res.page + 1 }), rel: 'next' }, 'Next ›') : null,
    res.page < res.page_count ? h('a', { href: url({ page: res.page_count }) }, 'Last »') : null);
}

function declareForm() {
  const name = h('input', { name: 'queue-name', required: true });
  const vhost = h('input', { name: 'queue-vhost', value: '/' });
  const durable = h('input', { type: 'checkbox', name: 'durable', checked: true });
  const args = h('textarea', { name: 'arguments', rows: 3, placeholder: '{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "orders.dlq"}' });
  const err = h('p', { class: 'field-error', role: 'alert' });
  const form = h('form', { class: 'card action declare-queue' },
    field('Name', name), field('Vhost', vhost),
    h('label', { class: 'check' }, durable, ' Durable'), field('Arguments (JSON)', args), err,
    h('button', { type: 'submit', class: 'primary' }, 'Declare'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    let a = {};
    if (args.value.trim()) {
      try { a = JSON.parse(args.value); } catch (x) { err.textContent = `Arguments are not JSON: ${x.message}`; return; }
    }
    try {
      await call('PUT', `/api/queues/${enc(vhost.value)}/${enc(name.value)}`, { durable: durable.checked, auto_delete: false, arguments: a });
      toast(`Declared queue ${name.value}.`);
      navigate(`/queues/${enc(vhost.value)}/${enc(name.value)}`);
    } catch (x) {
      err.textContent = x.message;
    }
  });
  return h('details', { class: 'actions-box' }, h('summary', {}, 'Declare a queue'), form);
}
