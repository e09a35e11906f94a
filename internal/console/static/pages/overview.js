// / : rates as live charts, totals, alarms, node and version.
import { get } from '../api.js';
import { h, replace, num, rate, bytes, every, failure } from '../dom.js';
import { LineChart } from '../chart.js';

export default async function overview(main) {
  const status = h('p', { class: 'state loading' }, 'Loading the overview…');
  const head = h('div', { class: 'facts' });
  const alarms = h('section', { class: 'alarms', 'aria-label': 'Alarms' });
  const charts = h('div', { class: 'charts' });
  const totals = h('div', { class: 'tiles' });
  replace(main, h('h1', {}, 'Overview'), status, head, alarms, charts, totals);
  const rates = new LineChart(charts, {
    title: 'Message rates (per second)', format: (v) => rate(v),
    series: [
      { key: 'publish', label: 'publish' }, { key: 'deliver', label: 'deliver' },
      { key: 'ack', label: 'ack' }, { key: 'redeliver', label: 'redeliver' },
      { key: 'dead_letter', label: 'dead-letter' },
    ],
  });
  const depth = new LineChart(charts, {
    title: 'Queued messages', format: num,
    series: [{ key: 'ready', label: 'ready' }, { key: 'unacked', label: 'unacked' }, { key: 'delayed', label: 'delayed' }],
  });
  every(2000, async () => {
    let o, conns, nodes;
    try {
      [o, conns, nodes] = await Promise.all([get('/api/overview'), get('/api/connections').catch(() => []),
        get('/api/nodes').catch(() => [])]);
    } catch (e) {
      replace(status, failure('the overview', e).textContent);
      status.className = 'state error';
      return;
    }
    status.remove();
    const ms = o.message_stats || {};
    const r = (k) => (ms[k + '_details'] || {}).rate || 0;
    rates.push({ publish: r('publish'), deliver: r('deliver_get'), ack: r('ack'), redeliver: r('redeliver'), dead_letter: r('dead_letter') });
    const qt = o.queue_totals || {};
    depth.push({ ready: qt.messages_ready, unacked: qt.messages_unacknowledged, delayed: qt.messages_delayed });
    replace(head,
      fact('Node', o.node), fact('Version', `${o.product_name || 'Sluice'} ${o.product_version || ''}`),
      fact('Cluster', o.cluster_name),
      nodes[0] && nodes[0].mem_used ? fact('Memory', nodes[0].mem_limit ? `${bytes(nodes[0].mem_used)} of ${bytes(nodes[0].mem_limit)}` : bytes(nodes[0].mem_used)) : null,
      nodes[0] && nodes[0].disk_free ? fact('Disk free', bytes(nodes[0].disk_free)) : null,
      fact('Listeners', (o.listeners || []).map((l) => `${l.protocol} ${l.ip_address}:${l.port}`).join(', ') || '–'));
    const ot = o.object_totals || {};
    replace(totals,
      tile('Messages', num(qt.messages)), tile('Ready', num(qt.messages_ready)),
      tile('Unacked', num(qt.messages_unacknowledged)), tile('Delayed', num(qt.messages_delayed)),
      tile('Queues', num(ot.queues)), tile('Exchanges', num(ot.exchanges)),
      tile('Connections', num(ot.connections)), tile('Channels', num(ot.channels)), tile('Consumers', num(ot.consumers)),
      tile('Published', num(ms.publish)), tile('Dead-lettered', num(ms.dead_letter)));
    replace(alarms, ...alarmList(o, conns, nodes[0]));
  });
}

const fact = (k, v) => h('div', {}, h('span', {}, k), h('b', {}, v || '–'));
const tile = (k, v) => h('div', { class: 'tile' }, h('span', {}, k), h('b', {}, v));

function alarmList(o, conns, node) {
  const out = [];
  for (const a of o.alarms || []) {
    const what = a.resource === 'memory'
      ? `Memory alarm on ${a.node}: publishers are blocked until memory use falls${node ? ` (${bytes(node.mem_used)} used, limit ${bytes(node.mem_limit)})` : ''}.`
      : a.resource === 'disk'
        ? `Disk alarm on ${a.node}: publishers are blocked until free disk rises${node ? ` (${bytes(node.disk_free)} free, limit ${bytes(node.disk_free_limit)})` : ''}.`
        : `${a.resource} alarm on ${a.node}.`;
    out.push(h('p', { class: 'alarm on' }, what));
  }
  const blocked = conns.filter((c) => c.state === 'blocked' || c.state === 'blocking');
  if (blocked.length) out.push(h('p', { class: 'alarm on' }, `${blocked.length} connection(s) blocked by flow control.`));
  if (!out.length) out.push(h('p', { class: 'alarm off' }, 'No alarms: memory, disk and publishers are fine.'));
  return out;
}
