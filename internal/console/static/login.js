// The sign-in page: carries ?next into the form and says why the last
// attempt failed.
const q = new URLSearchParams(location.search);
const next = q.get('next');
if (next) document.getElementById('next').value = next;
const why = {
  invalid: 'That user name and password did not match a broker user (or the user may not sign in from here).',
  tags: 'This user has none of the tags the console needs (administrator, management or monitoring).',
  form: 'The form could not be read; try again.',
  throttled: 'Too many failed sign-ins from this address; wait a little and try again.',
}[q.get('error')];
if (why) {
  const p = document.getElementById('login-error');
  p.textContent = why;
  p.hidden = false;
}
