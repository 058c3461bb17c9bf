// baton's dashboard: one stream of status pushed by batond (GET /v1/status?follow=1) and one
// of events (GET /v1/events), both read with fetch so that the token travels in a header.
// No framework, no polling loop: the page redraws when batond sends something.
'use strict';

const page = {
  token: null,
  readOnly: false,
  services: new Map(),  // name -> {el, samples: [[t, open connections]], history, logs}
  cpu: new Map(),       // pid -> [cpu_s, t]: the previous reading, for a percentage
  streams: 0,           // streams up, of 2
};

// The token comes in the address's fragment (#token=...), which browsers never send; it
// stays in this tab's session storage and leaves the address bar.
function readToken() {
  const m = /(?:^#|&)token=([0-9a-fA-F]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem('baton-token', m[1]);
    history.replaceState(null, '', location.pathname);
  }
  return sessionStorage.getItem('baton-token');
}

function headers(extra) {
  return Object.assign({Authorization: 'Bearer ' + page.token}, extra || {});
}

class ApiError extends Error {}

async function errorOf(res) {
  try {
    const body = await res.json();
    return new ApiError((body.error && body.error.message) || res.statusText);
  } catch (e) {
    return new ApiError(res.status + ' ' + res.statusText);
  }
}

// Calls `onLine` with each line of an NDJSON answer as it arrives; returns when it ends.
async function readLines(res, onLine) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, {stream: true});
    let at;
    while ((at = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      if (line.trim()) onLine(JSON.parse(line));
    }
  }
}

async function call(method, path, body, onLine) {
  const res = await fetch(path, {
    method,
    headers: headers(Object.assign({'Content-Type': 'application/json'},
                                   onLine ? {Accept: 'application/x-ndjson'} : {})),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) showNeedToken();
  if (!res.ok) throw await errorOf(res);
  if (onLine) return readLines(res, onLine);
  return res.json();
}

// A stream that is opened again when it ends (batond restarted or replaced its program).
function follow(path, onLine) {
  let wait = 500;
  const open = async () => {
    try {
      const res = await fetch(path, {headers: headers()});
      if (res.status === 401) return showNeedToken();
      if (!res.ok) throw await errorOf(res);
      linkUp(true);
      wait = 500;
      await readLines(res, onLine);
    } catch (e) {
      console.warn(path, e);
    }
    linkUp(false);
    setTimeout(open, wait);
    wait = Math.min(wait * 2, 5000);
  };
  open();
}

function linkUp(up) {
  page.streams += up ? 1 : -1;
  const link = document.getElementById('link');
  link.textContent = page.streams >= 2 ? 'live' : 'reconnecting';
  link.className = 'link ' + (page.streams >= 2 ? 'up' : 'down');
}

function showNeedToken() {
  document.getElementById('need-token').hidden = false;
  document.getElementById('link').textContent = 'no token';
}

// Small helpers for building the page.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v;  // CSSOM: the page's policy allows no inline style attribute
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
const badge = (text) => el('span', {class: 'badge ' + text}, text);
const ago = (t) => new Date(t * 1000).toLocaleTimeString();
function bytes(n) {
  if (n === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + ' ' + units[i];
}

function renderStatus(status) {
  const d = status.daemon;
  document.getElementById('daemon').textContent =
      `batond ${d.version}, pid ${d.pid}, up ${Math.round(d.uptime_s)} s, ${bytes(d.rss_bytes)}`;
  const seen = new Set();
  const now = Date.now() / 1000;
  for (const svc of status.services) {
    seen.add(svc.name);
    renderService(svc, now);
  }
  for (const [name, s] of page.services)
    if (!seen.has(name)) { s.el.remove(); page.services.delete(name); }
}

function serviceSlot(name) {
  let s = page.services.get(name);
  if (s) return s;
  const node = document.getElementById('service-template').content.firstElementChild.cloneNode(true);
  node.dataset.service = name;
  document.getElementById('services').append(node);
  s = {el: node, samples: [], history: null, logs: null};
  page.services.set(name, s);
  const logsBox = node.querySelector('.logs-box');
  logsBox.addEventListener('toggle', () => toggleLogs(name, logsBox.open));
  loadHistory(name);
  return s;
}

function renderService(svc, now) {
  const s = serviceSlot(svc.name);
  const q = (sel) => s.el.querySelector(sel);
  q('.name').textContent = svc.name;
  q('.version').textContent = svc.version || '-';
  const state = q('.state');
  state.textContent = svc.state;
  state.className = 'state badge ' + svc.state;
  renderActions(svc, q('.actions'));
  renderHandover(svc, q('.handover'));
  renderListeners(svc, q('.listeners tbody'));
  q('.generations').replaceChildren(...svc.generations.map((g) => renderGeneration(g, now)));
  if (!(svc.proxies || []).length) return;
  q('figure.proxied').hidden = false;
  s.samples.push([now, svc.proxies.reduce((sum, p) => sum + p.active, 0)]);
  if (s.samples.length > 150) s.samples.shift();
  drawLine(q('svg.connections'), s.samples);
}

function renderActions(svc, box) {
  const progressive = svc.handover && svc.handover.progressive;
  const wanted = ['upgrade', 'rollback', 'restart', 'scale'];
  if (progressive) wanted.push('promote', progressive.paused ? 'resume' : 'pause');
  const key = wanted.join(' ') + (page.readOnly ? ' ro' : '');
  if (box.dataset.key === key) return;  // unchanged: keep the buttons (and a click in flight)
  box.dataset.key = key;
  box.replaceChildren(...(page.readOnly ? [el('span', {class: 'muted'}, 'read-only')] :
      wanted.map((a) => el('button', {'data-action': a, onclick: () => act(svc.name, a)}, a))));
}

function renderHandover(svc, box) {
  const h = svc.handover;
  if (!h) return box.replaceChildren();
  const parts = [el('div', {}, `${h.kind} to `, el('b', {}, h.version), ` (generation ${h.generation})`)];
  const p = h.progressive;
  if (p) {
    parts.push(el('div', {class: 'steps'}, ...p.steps.map((w, i) =>
        el('span', {class: i + 1 < p.step ? 'done' : i + 1 === p.step ? 'now' : ''}, w + '%'))));
    parts.push(el('div', {class: 'bar'}, el('span', {style: `width:${p.weight}%`})));
    parts.push(el('div', {class: 'progress'},
        `step ${p.step} of ${p.steps.length}: ${p.weight}% of new connections` +
        (p.paused ? ', paused' : `, ${Math.max(0, p.step_left_s).toFixed(0)} s left`) +
        `; this step ${p.this_step.connections} connections, ${p.this_step.failures} failures, ` +
        `${p.this_step.resets} resets`));
  } else {
    const gen = svc.generations.find((g) => g.id === h.generation);
    const ready = gen ? gen.workers.filter((w) => w.state === 'ready').length : 0;
    parts.push(el('div', {class: 'bar'}, el('span', {style: `width:${100 * ready / svc.replicas}%`})));
    parts.push(el('div', {class: 'progress'}, `${ready} of ${svc.replicas} workers ready`));
  }
  box.replaceChildren(...parts);
}

function renderListeners(svc, body) {
  body.replaceChildren(...svc.listeners.map((l) => {
    let traffic = '';
    const proxy = (svc.proxies || []).find((p) => p.name === l.name);
    if (proxy) traffic = `${proxy.active} open, ${proxy.total} total, ${proxy.errors} errors, ${proxy.resets} resets`;
    else if (l.steering) traffic = l.steering.sockets.filter((k) => k.generation)
        .map((k) => `generation ${k.generation}: ${k.weight}%`).join(', ');
    return el('tr', {}, el('td', {}, l.name), el('td', {}, l.address), el('td', {}, l.mode), el('td', {}, traffic));
  }));
}

function renderGeneration(g, now) {
  const rows = g.workers.map((w) => {
    const u = w.usage || {};
    let cpu = '';
    const before = page.cpu.get(w.pid);
    if (u.cpu_s !== undefined) {
      if (before && now > before[1]) cpu = (100 * (u.cpu_s - before[0]) / (now - before[1])).toFixed(1) + '%';
      page.cpu.set(w.pid, [u.cpu_s, now]);
    }
    return el('tr', {'data-pid': w.pid}, el('td', {class: 'num'}, w.id), el('td', {class: 'num'}, w.pid),
        el('td', {}, badge(w.state)), el('td', {class: 'num'}, w.restarts), el('td', {class: 'num'}, bytes(u.rss_bytes)),
        el('td', {class: 'num'}, cpu), el('td', {}, w.status || w.last_exit || ''));
  });
  return el('div', {class: 'generation', 'data-generation': g.id},
      el('div', {}, `generation ${g.id} `, el('b', {class: 'version'}, g.version), ' ', badge(g.state),
         g.proxied_connections !== undefined ? ` ${g.proxied_connections} proxied connections` : '',
         g.reason ? el('span', {class: 'error'}, ' ' + g.reason) : ''),
      el('table', {}, el('thead', {}, el('tr', {}, ...['worker', 'pid', 'state', 'restarts', 'RSS', 'CPU', 'status']
          .map((t) => el('th', {}, t)))), el('tbody', {}, ...rows)));
}

async function loadHistory(name) {
  try {
    const h = await call('GET', `/v1/services/${encodeURIComponent(name)}/history`);
    const s = page.services.get(name);
    if (!s) return;
    const releases = h.releases.slice(-30);
    s.el.querySelector('.history tbody').replaceChildren(...releases.slice().reverse().slice(0, 20).map((r) =>
        el('tr', {}, el('td', {}, ago(r.at)), el('td', {}, r.kind), el('td', {}, r.version),
           el('td', {}, badge(r.outcome)), el('td', {class: 'num'}, r.duration_s !== undefined ? r.duration_s.toFixed(2) + ' s' : ''),
           el('td', {}, r.reason || ''))));
    drawBars(s.el.querySelector('svg.durations'), releases);
  } catch (e) {
    console.warn('history', e);
  }
}

function drawBars(svg, releases) {
  const max = Math.max(0.001, ...releases.map((r) => r.duration_s || 0));
  const w = 300 / 30;
  svg.parentNode.querySelector('.max').textContent = `(highest ${max.toFixed(2)} s)`;
  svg.replaceChildren(...releases.map((r, i) => {
    const h = 70 * (r.duration_s || 0) / max;
    const rect = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    for (const [k, v] of Object.entries({x: i * w + 1, y: 75 - h, width: w - 2, height: h})) rect.setAttribute(k, v);
    if (r.outcome !== 'promoted') rect.setAttribute('class', 'failed');
    const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
    title.textContent = `${r.version} ${r.outcome} ${(r.duration_s || 0).toFixed(2)} s`;
    rect.append(title);
    return rect;
  }));
}

function drawLine(svg, samples) {
  if (samples.length < 2) return;
  const t0 = samples[0][0], t1 = samples[samples.length - 1][0];
  const max = Math.max(1, ...samples.map((s) => s[1]));
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', samples.map(([t, v]) =>
      `${(300 * (t - t0) / Math.max(1, t1 - t0)).toFixed(1)},${(75 - 70 * v / max).toFixed(1)}`).join(' '));
  svg.parentNode.querySelector('.max').textContent = `(highest ${max})`;
  svg.replaceChildren(line);
}

// The logs of a service while its box is open: the last lines, then each new one.
function toggleLogs(name, open) {
  const s = page.services.get(name);
  if (!s) return;
  if (s.logs) { s.logs.abort(); s.logs = null; }
  if (!open) return;
  const pre = s.el.querySelector('pre.logs');
  pre.textContent = '';
  s.logs = new AbortController();
  fetch(`/v1/services/${encodeURIComponent(name)}/logs?lines=50&follow=1`,
        {headers: headers({Accept: 'application/x-ndjson'}), signal: s.logs.signal})
      .then((res) => readLines(res, (l) => {
        if (!l.line) return;
        pre.append(`${ago(l.time)} ${l.version} ${l.pid} ${l.stream}: ${l.line}\n`);
        pre.scrollTop = pre.scrollHeight;
      }))
      .catch(() => {});
}

function onEvent(e) {
  const list = document.getElementById('events');
  list.prepend(el('li', {'data-type': e.type}, el('span', {class: 'time'}, ago(e.time)),
                  el('span', {class: 'type'}, e.type), ' ', e.service, ': ', e.message || ''));
  while (list.children.length > 200) list.lastChild.remove();
  if (['promoted', 'failed', 'rolling_back', 'step_passed'].includes(e.type) && page.services.has(e.service))
    loadHistory(e.service);
}

// Asks before acting: the fields an action needs, and what it will do.
function confirmAction(title, text, fields) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-fields').replaceChildren(...fields.map((f) =>
      el('label', {}, f.label, el('input', {name: f.name, value: f.value || '', placeholder: f.placeholder || ''}))));
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (dialog.returnValue !== 'ok') return resolve(null);
      const values = {};
      for (const input of dialog.querySelectorAll('input')) values[input.name] = input.value.trim();
      resolve(values);
    }, {once: true});
  });
}

const longActions = new Set(['upgrade', 'rollback', 'restart']);
const texts = {
  upgrade: 'Starts a new generation and moves traffic to it once it is ready; the live one keeps serving if it fails.',
  rollback: 'Returns to the previous promoted release, through a full handover.',
  restart: 'Starts the live release again as a new generation, through a full handover.',
  scale: 'Changes the number of workers of the live generation.',
  promote: 'Skips the remaining steps: all new connections go to the new generation.',
  pause: 'Holds the current step until resumed.',
  resume: 'Carries on with the steps.',
};

async function act(name, action) {
  const svc = page.services.get(name);
  const fields = action === 'upgrade' ? [{name: 'version', label: 'Version', placeholder: 'v2'},
                                         {name: 'command', label: 'Command (optional)', placeholder: '/srv/app/v2/server --port 8080'}]
               : action === 'scale' ? [{name: 'replicas', label: 'Workers', placeholder: '4'}] : [];
  const values = await confirmAction(`${action} ${name}`, texts[action], fields);
  if (!values) return;
  let body = {};
  if (action === 'upgrade') {
    if (!values.version) return showOperation(svc, 'failed', 'upgrade: a version is needed', []);
    body.version = values.version;
    if (values.command) body.command = values.command.startsWith('[') ? JSON.parse(values.command)
                                                                      : values.command.split(/\s+/);
  }
  if (action === 'scale') body.replicas = Number(values.replicas);
  const steps = [];
  showOperation(svc, 'running', `${action} ${name}: in progress`, steps);
  try {
    if (longActions.has(action)) {
      let result = null;
      await call('POST', `/v1/services/${encodeURIComponent(name)}/${action}`, body, (line) => {
        if (line.event) {
          steps.push(`${line.event.type}: ${line.event.message || ''}`);
          showOperation(svc, 'running', `${action} ${name}: in progress`, steps);
        }
        if (line.result) result = line.result;
        if (line.error) result = {promoted: false, reason: line.error.message};
      });
      if (!result) throw new ApiError('the answer ended before the outcome');
      if (result.promoted) showOperation(svc, 'ok', `${result.version} promoted in ${(result.duration_s || 0).toFixed(2)} s`, steps);
      else showOperation(svc, 'failed', `${result.version || ''} not promoted: ${result.reason}`, steps);
    } else {
      const r = await call('POST', `/v1/services/${encodeURIComponent(name)}/${action}`, body);
      showOperation(svc, 'ok', `${action} ${name}: done` + (r.state ? ` (now ${r.state})` : ''), steps);
    }
  } catch (e) {
    showOperation(svc, 'failed', `${action} ${name}: ${e.message}`, steps);
  }
}

function showOperation(svc, outcome, text, steps) {
  const box = svc.el.querySelector('.operation');
  box.hidden = false;
  box.className = 'operation ' + outcome;
  box.dataset.outcome = outcome;
  box.replaceChildren(el('div', {class: 'outcome'}, text), el('ol', {}, ...steps.map((s) => el('li', {}, s))));
}

async function start() {
  // An address with the token pasted into this tab: start again with it.
  window.addEventListener('hashchange', () => { if (/token=/.test(location.hash)) location.reload(); });
  page.token = readToken();
  if (!page.token) return showNeedToken();
  try {
    page.readOnly = (await call('GET', '/v1/dashboard')).read_only;
  } catch (e) {
    if (e instanceof ApiError) console.warn(e);
  }
  follow('/v1/status?follow=1&interval=2s', renderStatus);
  follow('/v1/events', onEvent);
}

start();
