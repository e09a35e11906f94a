// /connections : open AMQP connections with their channels, client
// properties and flow state; close one.
import { get, call, enc, session } from '../api.js';
import { h, replace, num, loading, empty, failure, toast, every, confirmDialog } from '../dom.js';

export default async function connections(main) {
  const body = h('div', {}, loading('the connections'));
  replace(main, h('h1', {}, 'Connections'), body);
  const load = async () => {
    let cs, chs;
    try {
      [cs, chs] = await Promise.all([get('/api/connections'), get('/api/channels')]);
    } catch (e) {
      replace(body, failure('the connections', e));
      return;
    }
    if (!cs.length) { replace(body, empty('No client is connected.')); return; }
    replace(body, ...cs.map((c) => {
      const mine = chs.filter((ch) => ch.connection_details.name === c.name);
      const cp = c.client_properties || {};
      const blocked = c.state === 'blocked' || c.state === 'blocking';
      return h('section', { class: 'card conn', dataset: { connection: c.name } },
        h('h2', {}, c.name, ' ', h('span', { class: `badge ${blocked ? 'blocked' : 'ok'}` }, blocked ? `${c.state} by flow control` : c.state)),
        h('p', {}, `${c.user} on vhost ${c.vhost} from ${c.peer_host}:${c.peer_port} · ${c.protocol}`),
        h('details', {}, h('summary', {}, 'Client properties'),
          h('dl', {}, Object.entries(cp).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))]))),
        mine.length ? h('ul', { class: 'plain' }, mine.map((ch) => h('li', {},
          `Channel ${ch.number}: ${num(ch.consumer_count)} consumer(s), ${num(ch.messages_unacknowledged)} unacked, prefetch ${num(ch.prefetch_count)}${ch.confirm ? ', confirms' : ''}`)))
          : h('p', {}, 'No channels.'),
        session.can_manage ? h('button', { type: 'button', class: 'danger', 'data-action': 'close-connection', onclick: async () => {
          if (!await confirmDialog({ title: `Close ${c.name}?`, body: 'The client gets 320 CONNECTION_FORCED.', confirm: 'Close', danger: true })) return;
          try { await call('DELETE', `/api/connections/${enc(c.name)}`); toast(`Closed ${c.name}.`); load(); } catch (x) { toast(`Close refused: ${x.message}`, 'error'); }
        } }, 'Close connection…') : null);
    }));
  };
  every(5000, load);
}
