// /exchanges : every exchange with its bindings; declare, delete, bind.
import { get, call, enc, session } from '../api.js';
import { h, replace, num, rate, loading, empty, failure, toast, field, table, confirmDialog } from '../dom.js';
import { navigate } from '../app.js';

export default async function exchanges(main) {
  const body = h('div', {}, loading('the exchanges'));
  replace(main, h('h1', {}, 'Exchanges'), body, session.can_manage ? forms() : null);
  let xs, bs;
  try {
    [xs, bs] = await Promise.all([get('/api/exchanges'), get('/api/bindings')]);
  } catch (e) {
    replace(body, failure('the exchanges', e));
    return;
  }
  if (!xs.length) { replace(body, empty('There are no exchanges.')); return; }
  replace(body, table(['Name', 'Vhost', 'Type', 'Durable', 'In/s', 'Bindings', ''], xs.map((x) => {
    const mine = bs.filter((b) => b.vhost === x.vhost && b.source === x.name);
    const builtin = x.name === '' || x.name.startsWith('amq.');
    return h('tr', { dataset: { exchange: x.name } },
      h('td', {}, x.name || '(default)'), h('td', {}, x.vhost), h('td', {}, x.type), h('td', {}, x.durable ? 'yes' : 'no'),
      h('td', { class: 'n' }, rate(((x.message_stats || {}).publish_in_details || {}).rate)),
      h('td', {}, mine.length ? h('ul', { class: 'plain' }, mine.map((b) => h('li', {}, `→ ${b.destination_type} `,
        b.destination_type === 'queue' ? h('a', { href: `/queues/${enc(b.vhost)}/${enc(b.destination)}` }, b.destination) : b.destination,
        b.routing_key ? ` (key “${b.routing_key}”)` : ''))) : (x.name ? 'none' : 'every queue, by name')),
      h('td', {}, session.can_manage && !builtin ? h('button', { type: 'button', class: 'danger', 'data-action': 'delete-exchange', onclick: () => remove(x) }, 'Delete…') : null));
  })));
}

async function remove(x) {
  if (!await confirmDialog({ title: `Delete exchange ${x.name}?`, body: 'Its bindings go with it.', confirm: 'Delete', danger: true, mustType: x.name })) return;
  try { await call('DELETE', `/api/exchanges/${enc(x.vhost)}/${enc(x.name)}`); toast(`Deleted exchange ${x.name}.`); navigate('/exchanges', true); } catch (e) { toast(`Delete refused: ${e.message}`, 'error'); }
}

function forms() {
  const name = h('input', { name: 'exchange-name', required: true });
  const vhost = h('input', { name: 'exchange-vhost', value: '/' });
  const type = h('select', { name: 'exchange-type' }, ['direct', 'fanout', 'topic', 'headers', 'x-delayed-message'].map((t) => h('option', { value: t }, t)));
  const err = h('p', { class: 'field-error', role: 'alert' });
  const declare = h('form', { class: 'card action declare-exchange' }, h('h2', {}, 'Declare an exchange'), field('Name', name), field('Vhost', vhost), field('Type', type), err,
    h('button', { type: 'submit', class: 'primary' }, 'Declare'));
  declare.addEventListener('submit', async (e) => {
    e.preventDefault(); err.textContent = '';
    try { await call('PUT', `/api/exchanges/${enc(vhost.value)}/${enc(name.value)}`, { type: type.value, durable: true, auto_delete: false, internal: false }); toast(`Declared exchange ${name.value}.`); navigate('/exchanges', true); } catch (x) { err.textContent = x.message; }
  });
  const bx = h('input', { name: 'bind-exchange', required: true }), bq = h('input', { name: 'bind-queue', required: true });
  const bk = h('input', { name: 'bind-key' }), bv = h('input', { name: 'bind-vhost', value: '/' });
  const berr = h('p', { class: 'field-error', role: 'alert' });
  const bind = h('form', { class: 'card action bind' }, h('h2', {}, 'Bind a queue'), field('Exchange', bx), field('Queue', bq), field('Routing key', bk), field('Vhost', bv), berr,
    h('button', { type: 'submit', class: 'primary' }, 'Bind'));
  bind.addEventListener('submit', async (e) => {
    e.preventDefault(); berr.textContent = '';
    try { await call('POST', `/api/bindings/${enc(bv.value)}/e/${enc(bx.value)}/q/${enc(bq.value)}`, { routing_key: bk.value }); toast(`Bound ${bq.value} to ${bx.value}.`); navigate('/exchanges', true); } catch (x) { berr.textContent = x.message; }
  });
  return h('div', { class: 'columns' }, declare, bind);
}
