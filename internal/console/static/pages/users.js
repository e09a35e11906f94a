// /users : the broker's users and their tags (administrators only).
import { get, session } from '../api.js';
import { h, replace, loading, empty, failure, table } from '../dom.js';

export default async function users(main) {
  const body = h('div', {}, loading('the users'));
  replace(main, h('h1', {}, 'Users'), body);
  if (!session.is_admin) { replace(body, empty('Only administrators see the users.')); return; }
  let us, ps;
  try {
    [us, ps] = await Promise.all([get('/api/users'), get('/api/permissions')]);
  } catch (e) {
    replace(body, failure('the users', e));
    return;
  }
  if (!us.length) { replace(body, empty('There are no users.')); return; }
  replace(body, table(['Name', 'Tags', 'Permissions (vhost: configure / write / read)'], us.map((u) => h('tr', {},
    h('td', {}, u.name), h('td', {}, (Array.isArray(u.tags) ? u.tags : String(u.tags || '').split(',')).join(', ') || 'none'),
    h('td', {}, ps.filter((p) => p.user === u.name).map((p) => h('div', {}, `${p.vhost}: ${p.configure} / ${p.write} / ${p.read}`)))))));
}
