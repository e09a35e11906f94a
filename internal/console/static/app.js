// The console's router: every page is a real URL; this module reads
// location, loads the session and draws the matching page into <main>.
// Links inside the console change pages without a reload.

import { loadSession, logout } from './api.js';
import { h, replace, stopTimers, failure } from './dom.js';
import overview from './pages/overview.js';
import queues from './pages/queues.js';
import queue from './pages/queue.js';
import message from './pages/message.js';
import deadLetters from './pages/deadletters.js';
import exchanges from './pages/exchanges.js';
import connections from './pages/connections.js';
import users from './pages/users.js';

// route maps a path to [nav key, page function, its arguments].
function route(path) {
  const seg = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
  if (seg.length === 0) return ['overview', overview, []];
  switch (seg[0]) {
    case 'queues':
      if (seg.length === 1) return ['queues', queues, []];
      if (seg.length === 3) return ['queues', queue, [seg[1], seg[2]]];
      if (seg.length === 5 && seg[3] === 'messages') return ['queues', message, [seg[1], seg[2], seg[4]]];
      break;
    case 'dead-letters': return ['dead-letters', deadLetters, []];
    case 'exchanges': return ['exchanges', exchanges, []];
    case 'connections': return ['connections', connections, []];
    case 'users': return ['users', users, []];
  }
  return [null, null, []];
}

async function render() {
  stopTimers();
  const main = document.getElementById('main');
  const [key, page, args] = route(location.pathname);
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('current', a.dataset.nav === key);
  if (!page) {
    replace(main, h('h1', {}, 'Not found'), h('p', { class: 'state empty' }, `The console has no page at ${location.pathname}.`));
    return;
  }
  try {
    await page(main, ...args);
  } catch (e) {
    replace(main, failure('this page', e));
  }
}

// navigate moves to a console URL without a reload.
export function navigate(url, replaceState = false) {
  if (replaceState) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
  window.scrollTo(0, 0);
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a || a.target || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api') || url.pathname.startsWith('/static') ||
      url.pathname === '/metrics' || url.pathname === '/login') return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', render);

async function boot() {
  const main = document.getElementById('main');
  let s;
  try {
    s = await loadSession();
  } catch (e) {
    replace(main, failure('your session', e));
    return;
  }
  document.body.classList.toggle('can-manage', s.can_manage);
  document.getElementById('who').textContent = `${s.name}${s.tags.length ? ' · ' + s.tags.join(', ') : ''}`;
  document.querySelector('[data-nav="users"]').hidden = !s.is_admin;
  document.getElementById('logout').addEventListener('click', logout);
  const toggle = document.getElementById('menu-toggle');
  toggle.addEventListener('click', () => {
    const open = document.body.classList.toggle('nav-open');
    toggle.setAttribute('aria-expanded', String(open));
  });
  render();
}

boot();
