// The physicians' review page: HTML, CSS and vanilla JavaScript as strings (the npm package ships
// only dist/, and the page must work with nothing outside reachable: no framework, no CDN). The
// server sends them with a strict Content-Security-Policy (scripts and styles from itself only),
// and the script writes every text from the data with textContent, never as HTML.
//
// The server is the source of truth: a decision is shown saved only once its POST is answered, and
// an item is always drawn from GET /api/items/:id with this reviewer's folded decisions.

export const PAGE_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rubric review · promedical</title>
<link rel="stylesheet" href="/review.css">
</head>
<body data-pending="0">
<header class="bar">
  <h1>Rubric review</h1>
  <label>Round <select id="round"></select></label>
  <span id="progress" aria-live="polite"></span>
  <span class="spacer"></span>
  <span>Reviewer <b id="reviewer-name"></b> <button id="change-reviewer" type="button">change</button></span>
  <button id="help-button" type="button" aria-keyshortcuts="?">Keys (?)</button>
</header>
<main id="main" hidden>
  <section aria-labelledby="h-instruction">
    <h2 id="h-instruction">Instruction <span id="item-id" class="muted"></span> <span id="item-done" class="badge done" hidden>finished</span></h2>
    <div id="messages"></div>
  </section>
  <section aria-labelledby="h-candidates">
    <h2 id="h-candidates">Candidates</h2>
    <div id="candidates" class="candidates"></div>
  </section>
  <section aria-labelledby="h-criteria">
    <h2 id="h-criteria">Criteria</h2>
    <div id="criteria"></div>
  </section>
  <div class="actions">
    <button id="prev" type="button" aria-keyshortcuts="p">&larr; Previous (p)</button>
    <button id="done" type="button" aria-keyshortcuts="d" class="primary">Finish item (d)</button>
    <button id="next" type="button" aria-keyshortcuts="n">Next (n) &rarr;</button>
    <span id="status" role="status" aria-live="polite"></span>
  </div>
</main>
<p id="empty" hidden>No items to review.</p>
<div id="reviewer-dialog" class="overlay" hidden>
  <form id="reviewer-form" class="panel" role="dialog" aria-modal="true" aria-labelledby="h-reviewer">
    <h2 id="h-reviewer">Who is reviewing?</h2>
    <label for="reviewer-input">Your reviewer id (letters, digits and . _ @ -), sent with every decision</label>
    <input id="reviewer-input" required maxlength="64" autocomplete="username">
    <p id="reviewer-error" class="error" role="alert"></p>
    <button type="submit" class="primary">Start reviewing</button>
  </form>
</div>
<div id="help" class="overlay" hidden>
  <div class="panel" role="dialog" aria-modal="true" aria-labelledby="h-help">
    <h2 id="h-help">Keyboard</h2>
    <table>
      <tr><th scope="row"><kbd>j</kbd> / <kbd>&darr;</kbd>, <kbd>k</kbd> / <kbd>&uarr;</kbd></th><td>next / previous criterion</td></tr>
      <tr><th scope="row"><kbd>a</kbd></th><td>accept the criterion as drafted</td></tr>
      <tr><th scope="row"><kbd>e</kbd></th><td>edit it (<kbd>Enter</kbd> saves, <kbd>Shift</kbd>+<kbd>Enter</kbd> a new line, <kbd>Esc</kbd> cancels)</td></tr>
      <tr><th scope="row"><kbd>r</kbd></th><td>reject it</td></tr>
      <tr><th scope="row"><kbd>1</kbd> &hellip; <kbd>9</kbd></th><td>toggle candidate N's grade on it: met / not met</td></tr>
      <tr><th scope="row"><kbd>d</kbd></th><td>finish the item (every criterion decided, every kept one graded) and go on</td></tr>
      <tr><th scope="row"><kbd>n</kbd> / <kbd>p</kbd></th><td>next / previous item</td></tr>
      <tr><th scope="row"><kbd>?</kbd></th><td>this help (<kbd>Esc</kbd> closes it)</td></tr>
    </table>
    <button id="help-close" type="button">Close (Esc)</button>
  </div>
</div>
<script src="/review.js"></script>
</body>
</html>
`;

export const PAGE_CSS = String.raw`
:root { --fg: #1b1f24; --muted: #5b6470; --line: #d3d8de; --bg: #f6f7f9; --accent: #0b5cad; --ok: #18794e; --edit: #9a5b00; --bad: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
.bar { position: sticky; top: 0; z-index: 2; display: flex; gap: 1rem; align-items: center; padding: .5rem 1rem; background: #fff; border-bottom: 1px solid var(--line); }
.bar h1 { font-size: 1.1rem; margin: 0; }
.spacer { flex: 1; }
main { max-width: 1400px; margin: 0 auto; padding: 0 1rem 4rem; }
h2 { font-size: 1rem; margin: 1.2rem 0 .5rem; }
h3 { font-size: .9rem; margin: 1rem 0 .4rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.muted { color: var(--muted); font-weight: normal; }
.msg { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; margin-bottom: .5rem; }
.role { font-size: .75rem; text-transform: uppercase; color: var(--muted); }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.candidates { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: .75rem; }
.candidate { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; max-height: 22rem; overflow: auto; }
.candidate header { font-weight: 600; margin-bottom: .25rem; }
.criterion { background: #fff; border: 1px solid var(--line); border-left: 4px solid var(--line); border-radius: 6px; padding: .5rem .75rem; margin-bottom: .5rem; display: grid; grid-template-columns: 1fr auto; gap: .35rem 1rem; }
.criterion.selected { border-color: var(--accent); box-shadow: 0 0 0 2px rgba(11, 92, 173, .25); }
.criterion.accept { border-left-color: var(--ok); }
.criterion.edit { border-left-color: var(--edit); }
.criterion.reject { border-left-color: var(--bad); }
.criterion.reject .ctext { text-decoration: line-through; color: var(--muted); }
.ctext { white-space: pre-wrap; overflow-wrap: anywhere; }
.original { font-size: .85rem; color: var(--muted); white-space: pre-wrap; }
.cmeta { font-size: .8rem; color: var(--muted); }
.group { display: flex; gap: .35rem; flex-wrap: wrap; align-items: center; }
.csave { font-size: .8rem; min-height: 1.2em; }
.csave.saved { color: var(--ok); }
.csave.saving { color: var(--muted); }
.csave.error, .error { color: var(--bad); }
button { font: inherit; padding: .25rem .6rem; border: 1px solid var(--line); border-radius: 5px; background: #fff; cursor: pointer; }
button[aria-pressed="true"].accept { background: var(--ok); border-color: var(--ok); color: #fff; }
button[aria-pressed="true"].edit { background: var(--edit); border-color: var(--edit); color: #fff; }
button[aria-pressed="true"].reject { background: var(--bad); border-color: var(--bad); color: #fff; }
button.grade[data-met="true"] { background: #e3f4ea; border-color: var(--ok); }
button.grade[data-met="false"] { background: #fde8e6; border-color: var(--bad); }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
:focus-visible { outline: 3px solid #f0a500; outline-offset: 2px; }
.badge { font-size: .75rem; padding: .05rem .4rem; border-radius: 4px; }
.badge.done { background: #e3f4ea; color: var(--ok); }
.actions { display: flex; gap: .75rem; align-items: center; margin-top: 1rem; }
.editor { grid-column: 1 / -1; display: grid; gap: .4rem; }
.editor textarea { font: inherit; width: 100%; min-height: 4rem; }
.editor .row { display: flex; gap: 1rem; align-items: center; }
.overlay { position: fixed; inset: 0; background: rgba(0, 0, 0, .35); display: flex; align-items: center; justify-content: center; z-index: 5; }
.overlay[hidden] { display: none; }
.panel { background: #fff; border-radius: 8px; padding: 1rem 1.25rem; max-width: 36rem; display: grid; gap: .5rem; }
.panel th { text-align: left; padding-right: 1rem; white-space: nowrap; }
kbd { border: 1px solid var(--line); border-bottom-width: 2px; border-radius: 3px; padding: 0 .3rem; font-size: .85em; background: #fafafa; }
`;

export const PAGE_JS = String.raw`'use strict';
(function () {
  var TIERS = ['safety', 'proficiency', 'excellence'];
  var TIER_NAMES = { safety: 'Safety (veto)', proficiency: 'Proficiency', excellence: 'Excellence' };
  var REVIEWER_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
  var S = { reviewer: null, rounds: [], round: 0, list: [], pos: 0, view: null, order: [], selected: 0, editing: null, draft: null, rowStatus: {}, pending: 0, openedAt: 0 };
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'className') e.className = attrs[k];
      else if (attrs[k] !== undefined && attrs[k] !== null && attrs[k] !== false) e.setAttribute(k, attrs[k] === true ? '' : String(attrs[k]));
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }

  function setPending(d) { S.pending += d; document.body.dataset.pending = String(S.pending); }

  async function api(method, url, body) {
    var init = { method: method, headers: {} };
    if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
    var r = await fetch(url, init);
    var data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) throw new Error((data && data.error && data.error.message) || ('HTTP ' + r.status));
    return data;
  }
  var q = encodeURIComponent;

  function status(text, isError) { var s = $('status'); s.textContent = text; s.className = isError ? 'error' : ''; }
  // Loading failures (server gone, unknown item) show in the status line instead of vanishing.
  function guard(p) { p.catch(function (err) { status('could not load: ' + err.message, true); }); }

  // ---- reviewer ----
  function askReviewer() {
    $('reviewer-dialog').hidden = false;
    $('reviewer-input').value = S.reviewer || '';
    $('reviewer-input').focus();
  }
  $('reviewer-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var v = $('reviewer-input').value.trim();
    if (!REVIEWER_RE.test(v)) { $('reviewer-error').textContent = 'Use 1 to 64 letters, digits and . _ @ - (starting with a letter or digit).'; return; }
    $('reviewer-error').textContent = '';
    localStorage.setItem('promedical-reviewer', v);
    $('reviewer-dialog').hidden = true;
    S.reviewer = v;
    guard(start());
  });
  $('change-reviewer').addEventListener('click', askReviewer);

  // ---- rounds and items ----
  function hashState() {
    var h = new URLSearchParams(location.hash.slice(1));
    return { round: h.has('round') ? Number(h.get('round')) : null, item: h.get('item') };
  }
  async function start() {
    $('reviewer-name').textContent = S.reviewer;
    var h = hashState();
    var data = await api('GET', '/api/rounds?reviewer=' + q(S.reviewer));
    S.rounds = data.rounds;
    if (S.rounds.length === 0) { $('empty').hidden = false; return; }
    var sel = $('round');
    sel.replaceChildren();
    S.rounds.forEach(function (r) {
      sel.appendChild(el('option', { value: r.round, text: 'Round ' + r.round + ' (items ' + r.first + '\u2013' + (r.first + r.items - 1) + ')' }));
    });
    var k = h.round !== null && h.round >= 0 && h.round < S.rounds.length ? h.round : 0;
    await openRound(k, h.item);
  }
  $('round').addEventListener('change', function () { guard(openRound(Number($('round').value), null)); });

  async function openRound(k, itemId) {
    S.round = k;
    $('round').value = String(k);
    var data = await api('GET', '/api/rounds/' + k + '/items?reviewer=' + q(S.reviewer));
    S.list = data.items;
    var pos = S.list.findIndex(function (it) { return it.id === itemId; });
    if (pos < 0) pos = S.list.findIndex(function (it) { return !it.done; });
    await openItem(pos < 0 ? 0 : pos);
  }

  async function openItem(pos) {
    if (pos < 0 || pos >= S.list.length) return;
    var id = S.list[pos].id;
    var view = await api('GET', '/api/items/' + q(id) + '?reviewer=' + q(S.reviewer));
    S.pos = pos;
    S.view = view;
    S.selected = 0;
    S.editing = null;
    S.rowStatus = {};
    S.openedAt = Date.now();
    history.replaceState(null, '', '#round=' + S.round + '&item=' + q(id));
    status('', false);
    renderItem();
  }

  function progress() {
    var done = S.list.filter(function (it) { return it.done; }).length;
    $('progress').textContent = 'Item ' + (S.pos + 1) + ' of ' + S.list.length + ' \u00b7 ' + done + ' finished by you';
  }

  // ---- drawing ----
  function renderItem() {
    var v = S.view, it = v.item;
    $('main').hidden = false;
    $('item-id').textContent = it.id + (it.specialty ? ' \u00b7 ' + it.specialty : '') + (it.category ? ' \u00b7 ' + it.category : '');
    $('item-done').hidden = !v.state.done;
    var msgs = $('messages');
    msgs.replaceChildren();
    it.prompt.forEach(function (m) {
      msgs.appendChild(el('div', { className: 'msg' }, [el('div', { className: 'role', text: m.role }), el('div', { className: 'text', text: m.content })]));
    });
    var cands = $('candidates');
    cands.replaceChildren();
    it.candidates.forEach(function (c, i) {
      cands.appendChild(el('article', { className: 'candidate', 'aria-label': 'Candidate ' + (i + 1) }, [
        el('header', { text: (i + 1) + ' \u00b7 ' + c.id + ' \u00b7 ' + c.model }),
        el('div', { className: 'text', text: c.text }),
      ]));
    });
    S.order = [];
    TIERS.forEach(function (t) {
      it.criteria.forEach(function (c) { if (c.tier === t) S.order.push(c.id); });
    });
    progress();
    renderCriteria();
  }

  function criterionById(id) { return S.view.item.criteria.find(function (c) { return c.id === id; }); }

  function renderCriteria() {
    var box = $('criteria');
    box.replaceChildren();
    var st = S.view.state;
    TIERS.forEach(function (t) {
      var ids = S.order.filter(function (id) { return criterionById(id).tier === t; });
      if (ids.length === 0) return;
      box.appendChild(el('h3', { text: TIER_NAMES[t] }));
      ids.forEach(function (id) { box.appendChild(criterionRow(criterionById(id), st)); });
    });
    focusSelected();
  }

  function criterionRow(c, st) {
    var idx = S.order.indexOf(c.id);
    var d = st.decisions[c.id];
    var row = el('div', { className: 'criterion' + (d ? ' ' + d.action : '') + (idx === S.selected ? ' selected' : ''), 'data-id': c.id, tabindex: '-1', role: 'group', 'aria-label': 'Criterion ' + (idx + 1) + ' of ' + S.order.length + (d ? ', ' + d.action + 'ed' : ', undecided') });
    row.addEventListener('click', function () { if (S.selected !== idx) { S.selected = idx; markSelected(); } });
    var shown = d && d.edit ? d.edit : c;
    var body = el('div', {}, [el('div', { className: 'ctext', text: shown.text })]);
    if (d && d.edit) body.appendChild(el('div', { className: 'original', text: 'drafted: ' + c.text + (d.edit.tier !== c.tier ? ' (' + c.tier + ')' : '') }));
    var meta = [shown.tier];
    if (shown.weight !== undefined) meta.push('weight ' + shown.weight);
    if (c.axis) meta.push(c.axis);
    body.appendChild(el('div', { className: 'cmeta', text: meta.join(' \u00b7 ') }));
    row.appendChild(body);
    var acts = el('div', { className: 'group', role: 'group', 'aria-label': 'Decision' });
    [['accept', 'Accept (a)'], ['edit', 'Edit (e)'], ['reject', 'Reject (r)']].forEach(function (a) {
      var b = el('button', { type: 'button', className: a[0], 'aria-pressed': d && d.action === a[0] ? 'true' : 'false', 'data-action': a[0], text: a[1] });
      b.addEventListener('click', function () { S.selected = idx; if (a[0] === 'edit') openEditor(); else decide(a[0]); });
      acts.appendChild(b);
    });
    row.appendChild(acts);
    var grades = el('div', { className: 'group', role: 'group', 'aria-label': 'Grades of the candidates' });
    S.view.item.candidates.forEach(function (cand, i) {
      var g = st.grades[cand.id] ? st.grades[cand.id][c.id] : undefined;
      var label = (i + 1) + ' ' + cand.id + ': ' + (g === true ? 'met \u2713' : g === false ? 'not met \u2717' : 'ungraded');
      var b = el('button', { type: 'button', className: 'grade', 'data-response': cand.id, 'data-met': g === undefined ? null : String(g), 'aria-label': 'Candidate ' + (i + 1) + ' (' + cand.id + '): ' + (g === true ? 'met' : g === false ? 'not met' : 'ungraded') + '; press to toggle', text: label });
      b.addEventListener('click', function () { S.selected = idx; toggleGrade(i); });
      grades.appendChild(b);
    });
    var rs = S.rowStatus[c.id];
    grades.appendChild(el('span', { className: 'csave' + (rs ? ' ' + rs.kind : ''), role: 'status', text: rs ? rs.text : '' }));
    row.appendChild(grades);
    if (S.editing === c.id) row.appendChild(editor(c));
    return row;
  }

  function markSelected() {
    document.querySelectorAll('.criterion').forEach(function (r) { r.classList.toggle('selected', r.dataset.id === S.order[S.selected]); });
    focusSelected();
  }
  function focusSelected() {
    if (S.editing) { var t = document.querySelector('.editor textarea'); if (t) t.focus(); return; }
    var row = document.querySelector('.criterion[data-id="' + CSS.escape(S.order[S.selected] || '') + '"]');
    if (row && !document.querySelector('.overlay:not([hidden])')) { row.focus({ preventScroll: true }); row.scrollIntoView({ block: 'nearest' }); }
  }

  // ---- editing ----
  function openEditor() {
    var id = S.order[S.selected];
    if (!id) return;
    var c = criterionById(id), d = S.view.state.decisions[id];
    var shown = d && d.edit ? d.edit : c;
    S.editing = id;
    S.draft = { text: shown.text, tier: shown.tier, weight: shown.weight === undefined ? '' : String(shown.weight) };
    renderCriteria();
  }
  function editor(c) {
    var uid = 'edit-' + S.order.indexOf(c.id);
    var ta = el('textarea', { id: uid + '-text' });
    ta.value = S.draft.text;
    ta.addEventListener('input', function () { S.draft.text = ta.value; });
    var tier = el('select', { id: uid + '-tier' });
    ['proficiency', 'excellence', 'safety'].forEach(function (t) { tier.appendChild(el('option', { value: t, text: t })); });
    tier.value = S.draft.tier;
    var weight = el('input', { id: uid + '-weight', type: 'number', min: '0', step: '0.01' });
    weight.value = S.draft.weight;
    weight.disabled = S.draft.tier !== 'proficiency';
    tier.addEventListener('change', function () { S.draft.tier = tier.value; weight.disabled = tier.value !== 'proficiency'; });
    weight.addEventListener('input', function () { S.draft.weight = weight.value; });
    var save = el('button', { type: 'button', className: 'primary', text: 'Save edit (Enter)' });
    save.addEventListener('click', saveEdit);
    var cancel = el('button', { type: 'button', text: 'Cancel (Esc)' });
    cancel.addEventListener('click', cancelEdit);
    return el('div', { className: 'editor' }, [
      el('label', { for: uid + '-text', text: 'Criterion text (what a good response does)' }), ta,
      el('div', { className: 'row' }, [el('label', { for: uid + '-tier', text: 'Tier' }), tier, el('label', { for: uid + '-weight', text: 'Weight' }), weight, save, cancel]),
    ]);
  }
  function cancelEdit() { S.editing = null; renderCriteria(); }
  function saveEdit() {
    var text = S.draft.text.trim();
    if (text === '') { S.rowStatus[S.editing] = { kind: 'error', text: 'not saved: the text is empty' }; renderCriteria(); return; }
    var extra = { text: text, tier: S.draft.tier };
    if (S.draft.tier === 'proficiency' && S.draft.weight !== '') extra.weight = Number(S.draft.weight);
    var id = S.editing;
    S.editing = null;
    decide('edit', extra, id);
  }

  // ---- saving ----
  // POSTs go one at a time, in the order of the keys pressed, so the journal's order is the
  // reviewer's; a toggle reads the state the previous POST left.
  var queue = Promise.resolve();
  function send(id, label, url, bodyOf, apply) {
    var rows = S.rowStatus; // of the item the decision is about, even if another is open by the answer
    var view = S.view;
    rows[id] = { kind: 'saving', text: 'saving ' + label + '\u2026' };
    setPending(1);
    renderCriteria();
    queue = queue.then(async function () {
      try {
        var body = bodyOf(view);
        apply(view, body, await api('POST', url, body));
        rows[id] = { kind: 'saved', text: 'saved ' + label };
      } catch (err) {
        rows[id] = { kind: 'error', text: 'not saved: ' + err.message };
      } finally {
        setPending(-1);
        if (S.view === view) renderCriteria();
      }
    });
  }
  function decide(action, extra, cid) {
    var id = cid || S.order[S.selected];
    if (!id) return;
    send(id, action, '/api/decisions', function (view) {
      return Object.assign({ reviewer: S.reviewer, item: view.item.id, criterion: id, action: action }, extra || {});
    }, function (view, body, answer) {
      view.state.decisions[id] = answer.saved.edit ? { action: action, edit: answer.saved.edit } : { action: action };
    });
  }
  function toggleGrade(i) {
    var id = S.order[S.selected], cand = S.view.item.candidates[i];
    if (!id || !cand) return;
    send(id, 'grade of ' + cand.id, '/api/grades', function (view) {
      var cur = view.state.grades[cand.id] ? view.state.grades[cand.id][id] : undefined;
      return { reviewer: S.reviewer, item: view.item.id, response: cand.id, criterion: id, met: cur !== true };
    }, function (view, body) {
      (view.state.grades[cand.id] = view.state.grades[cand.id] || {})[id] = body.met;
    });
  }
  async function finish() {
    var view = S.view;
    if (S.pending > 0) { status('wait until every decision is saved', true); return; }
    setPending(1);
    try {
      await api('POST', '/api/done', { reviewer: S.reviewer, item: view.item.id, seconds: Math.round((Date.now() - S.openedAt) / 100) / 10 });
      view.state.done = true;
      S.list[S.pos].done = true;
      status('finished ' + view.item.id, false);
      var next = S.list.findIndex(function (it, j) { return j > S.pos && !it.done; });
      if (next >= 0) await openItem(next); else { renderItem(); status('every item of this round is finished', false); }
    } catch (err) {
      status('not finished: ' + err.message, true);
    } finally {
      setPending(-1);
    }
  }

  // ---- keys ----
  function showHelp(on) { $('help').hidden = !on; if (on) $('help-close').focus(); else focusSelected(); }
  $('help-button').addEventListener('click', function () { showHelp(true); });
  $('help-close').addEventListener('click', function () { showHelp(false); });
  $('prev').addEventListener('click', function () { guard(openItem(S.pos - 1)); });
  $('next').addEventListener('click', function () { guard(openItem(S.pos + 1)); });
  $('done').addEventListener('click', finish);

  document.addEventListener('keydown', function (ev) {
    if (!$('reviewer-dialog').hidden) return;
    if (!$('help').hidden) { if (ev.key === 'Escape' || ev.key === '?') { ev.preventDefault(); showHelp(false); } return; }
    if (S.editing) {
      if (ev.key === 'Escape') { ev.preventDefault(); cancelEdit(); }
      else if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); saveEdit(); }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || !S.view) return;
    var tag = ev.target && ev.target.tagName;
    if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') return;
    var k = ev.key, handled = true;
    if (k === 'j' || k === 'ArrowDown') { S.selected = Math.min(S.order.length - 1, S.selected + 1); markSelected(); }
    else if (k === 'k' || k === 'ArrowUp') { S.selected = Math.max(0, S.selected - 1); markSelected(); }
    else if (k === 'a') decide('accept');
    else if (k === 'r') decide('reject');
    else if (k === 'e') openEditor();
    else if (/^[1-9]$/.test(k)) toggleGrade(Number(k) - 1);
    else if (k === 'n') guard(openItem(S.pos + 1));
    else if (k === 'p') guard(openItem(S.pos - 1));
    else if (k === 'd') finish();
    else if (k === '?') showHelp(true);
    else handled = false;
    if (handled) ev.preventDefault();
  });

  S.reviewer = localStorage.getItem('promedical-reviewer');
  if (S.reviewer && REVIEWER_RE.test(S.reviewer)) guard(start()); else askReviewer();
})();
`;
