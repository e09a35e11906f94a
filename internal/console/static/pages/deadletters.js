// /dead-letters : every queue holding dead letters, counted by reason and
// by source queue, with the newest failure and links into the browser.
import { get, enc } from '../api.js';
import { h, replace, num, when, ago, loading, empty, failure } from '../dom.js';

export default async function deadLetters(main) {
  const body = h('div', {}, loading('the dead letters'));
  replace(main, h('h1', {}, 'Dead letters'),
    h('p', { class: 'hint' }, 'Queues holding messages that died elsewhere (they carry an x-death history). Counts are by each message\'s latest death.'),
    body);
  let qs;
  try {
    qs = await get('/api/dead-letters');
  } catch (e) {
    replace(body, e.status === 403 ? empty(`Your user may not read messages: ${e.message}`) : failure('the dead letters', e));
    return;
  }
  if (!qs.length) {
    replace(body, empty('No queue holds dead letters. Nothing has failed, or it has all been dealt with.'));
    return;
  }
  replace(body, ...qs.map((q) => {
    const qurl = `/queues/${enc(q.vhost)}/${enc(q.name)}`;
    const link = (k, v) => `${qurl}?${new URLSearchParams({ [k]: v })}`;
    const counts = (obj, k, label) => h('div', {}, h('h3', {}, label), h('ul', { class: 'counts' },
      Object.entries(obj).sort((a, b) => b[1] - a[1]).map(([v, n]) =>
        h('li', {}, h('a', { href: link(k, v) }, v || '(none)'), h('b', {}, num(n))))));
    return h('section', { class: 'card dlq', dataset: { queue: q.name } },
      h('h2', {}, h('a', { href: qurl }, q.name), h('small', {}, ` ${q.vhost}`)),
      h('p', {}, `${num(q.dead_letters)} dead letter(s)${q.complete ? '' : ' counted so far (the queue is long; counts are of its oldest part)'} of ${num(q.messages)} message(s).`),
      h('div', { class: 'columns' }, counts(q.by_reason, 'reason', 'By reason'), counts(q.by_source, 'source', 'By source queue')),
      q.newest ? h('p', { class: 'newest' }, 'Newest failure: ',
        h('a', { href: `${qurl}/messages/${q.newest.id}` }, `#${q.newest.id}`),
        ` ${q.newest.reason} in ${q.newest.source}, ${when(q.newest.time)} (${ago(q.newest.time)}).`) : null);
  }));
}
