// scopepilot live preview: the browser side.
//
// Plain JavaScript, no framework, no external resources. Three data paths:
//   * GET  /api/status   one snapshot on load (so the page fills in at once);
//   * GET  /api/live     Server-Sent Events: hello, status (1/s), detection, action;
//   * WS   /ws/preview   one WebSocket per image panel, latest-only frames with
//                        credit flow control (one `ready` = one frame).
// All URLs are relative, so the page also works behind a path prefix. When the daemon
// requires tokens, open the page as `/?token=<read token>`: every request carries it on.
'use strict';

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

const MAX_INITIAL_PANELS = 3;      // panels opened automatically on load
const LIST_LIMIT = 30;             // entries kept in the actions / events lists
const MARKER_LIFETIME_MS = 8000;   // event markers fade and disappear after this
const MARKERS_PER_PANEL = 60;      // hard cap per panel (oldest go first), in case of an event storm
const FPS_WINDOW_MS = 2000;        // client-side displayed-fps window
const CHART_SPAN_S = 120;          // chart history
const WS_BACKOFF_MIN_MS = 1000;    // preview socket reconnect delay, grows to …
const WS_BACKOFF_MAX_MS = 5000;    // … at most this
const STATUS_STALE_MS = 5000;      // no status for this long = "stalled"
const DEFAULT_MARKER_PX = 32;      // marker size when an event has no bbox

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

const $ = (sel, root = document) => root.querySelector(sel);

// The page's own URL token (if any), added to every request it makes.
const TOKEN = new URLSearchParams(location.search).get('token');
function withToken(path) {
  const url = new URL(path, location.href);
  if (TOKEN) url.searchParams.set('token', TOKEN);
  return url.href;
}

/** Create an element: el('span', {class: 'x', title: 't'}, 'text', childNode, …). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const num = (v, fallback = 0) => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);

/** Milliseconds with a sensible number of decimals. */
function fmtMs(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** Raw pixel values of the display window: integers unless tiny. */
function fmtValue(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  return Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1);
}

function fmtBytes(b) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (b >= 1000 && i < units.length - 1) { b /= 1000; i++; }
  return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function fmtDuration(s) {
  s = Math.max(0, Math.floor(num(s)));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const pad = (x) => String(x).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
}

const fmtClock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });

/** Trim a list element to `limit` children (newest are at the top). */
function capList(list, limit) {
  while (list.children.length > limit) list.lastElementChild.remove();
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

const state = {
  status: null,            // last status snapshot
  streams: [],             // status.streams
  stageKinds: new Map(),   // stage/stream name -> kind ("source", "detect", …)
  panels: [],              // open Panel objects
  panelsInitialised: false,
  live: false,             // SSE connected
  lastStatusAt: 0,         // performance.now() of the last status
  acqPrev: null,           // {frames, uptime} for the acquisition-rate estimate
  acqFps: null,
  liveEvents: [],          // [{ev, at}] events younger than MARKER_LIFETIME_MS (for new panels)
  chart: [],               // samples {t, fps, targetFps, lat: Map(stage -> p50 ms)}
};

// ---------------------------------------------------------------------------
// Live event stream (SSE)
// ---------------------------------------------------------------------------

function setLive(live) {
  state.live = live;
  document.body.dataset.live = live ? 'true' : 'false';
  updateConnectionIndicator();
}

/** The dot + text in the top bar: live / stalled / reconnecting. */
function updateConnectionIndicator() {
  const box = $('#connection');
  const text = $('#connection-text');
  let cls, label;
  if (!state.live) {
    cls = 'down'; label = 'disconnected – reconnecting…';
  } else if (state.lastStatusAt && performance.now() - state.lastStatusAt > STATUS_STALE_MS) {
    cls = 'stale'; label = 'connected, no status for ' +
      Math.round((performance.now() - state.lastStatusAt) / 1000) + ' s';
  } else {
    cls = 'up'; label = 'live';
  }
  box.className = 'connection ' + cls;
  text.textContent = label;
}

function parseJson(text) {
  try { return JSON.parse(text); } catch (e) { console.warn('bad JSON from server', e, text); return null; }
}

function connectLive() {
  const es = new EventSource(withToken('api/live'));

  es.onopen = () => setLive(true);
  es.onerror = () => {
    setLive(false);
    // EventSource retries by itself unless the server answered with an error
    // (wrong status or content type); then it is CLOSED and we retry ourselves.
    if (es.readyState === EventSource.CLOSED) setTimeout(connectLive, 2000);
  };

  // First message after every (re)connect: full snapshot + recent history.
  es.addEventListener('hello', (e) => {
    const hello = parseJson(e.data);
    if (!hello) return;
    setLive(true);
    if (hello.status) onStatus(hello.status);
    // Rebuild the lists from the server's history (oldest first -> prepend).
    $('#events-list').replaceChildren();
    $('#actions').replaceChildren();
    for (const ev of hello.recent_events || []) addEventItem(ev, null);
    for (const a of hello.recent_actions || []) addActionItem(a);
  });

  es.addEventListener('status', (e) => {
    const st = parseJson(e.data);
    if (st) onStatus(st);
  });

  es.addEventListener('detection', (e) => {
    const ev = parseJson(e.data);
    if (ev) onDetection(ev);
  });

  es.addEventListener('action', (e) => {
    const a = parseJson(e.data);
    if (a) addActionItem(a);
  });
}

/** One snapshot at load time, so the page is not empty until the SSE hello. */
async function fetchStatusOnce() {
  try {
    const res = await fetch(withToken('api/status'), { cache: 'no-store' });
    if (res.ok) onStatus(await res.json());
  } catch (e) {
    $('#status-line').textContent = 'server unreachable';
  }
}

// ---------------------------------------------------------------------------
// Status: top bar, stage table, subscribers, rules, chart samples
// ---------------------------------------------------------------------------

function onStatus(st) {
  state.status = st;
  state.lastStatusAt = performance.now();

  state.stageKinds = new Map((st.stages || []).map((s) => [s.name, s.kind]));
  const streams = Array.isArray(st.streams) ? st.streams : [];
  if (streams.join('\n') !== state.streams.join('\n')) {
    state.streams = streams.slice();
    for (const p of state.panels) p.refreshStreamOptions();
  }

  updateAcquisitionRate(st);
  renderStatusLine(st);
  renderStages(st);
  renderSubscribers(st);
  renderRules(st);
  addChartSample(st);
  drawChart();
  updateConnectionIndicator();

  if (!state.panelsInitialised && state.streams.length) initialPanels();
}

/** Acquisition rate from frames_acquired deltas between status updates. */
function updateAcquisitionRate(st) {
  const frames = num(st.frames_acquired), uptime = num(st.uptime_s);
  const prev = state.acqPrev;
  if (!prev || frames < prev.frames || uptime < prev.uptime) {
    state.acqPrev = { frames, uptime };   // first sample or daemon restarted
    state.acqFps = null;
    return;
  }
  const dt = uptime - prev.uptime;
  if (dt < 0.5) return;                   // too close together (fetch + hello)
  state.acqFps = (frames - prev.frames) / dt;
  state.acqPrev = { frames, uptime };
}

/** A labelled counter chip; `level` = 'bad' | 'warn' when the value is > 0. */
function counterChip(key, label, value, level, title) {
  const bad = num(value) > 0 && level;
  return el('span', {
    class: 'chip' + (bad ? ' ' + level : ''),
    dataset: { counter: key },
    title: title || label,
  }, el('span', { class: 'chip-label' }, label), ' ', el('span', { class: 'chip-value' }, value));
}

function renderStatusLine(st) {
  $('#version').textContent = st.version ? 'v' + st.version : '';
  const stages = st.stages || [];
  const subs = st.subscribers || [];
  const ev = st.events || {};
  const stageDrops = stages.reduce((a, s) => a + num(s.frames_dropped), 0);
  const stageErrors = stages.reduce((a, s) => a + num(s.errors), 0);
  const subDrops = subs.reduce((a, s) => a + num(s.dropped), 0);
  const perStage = (key) => stages.filter((s) => num(s[key]) > 0)
    .map((s) => `${s.name}: ${s[key]}`).join(', ');

  const interval = num(st.frame_interval_ms);
  const acqFps = state.acqFps === null ? '–' : state.acqFps.toFixed(1);
  const running = st.state === 'running';

  const chips = [
    el('span', { class: 'chip state ' + (running ? 'running' : 'idle'), dataset: { counter: 'state' } }, st.state || '?'),
    el('span', { class: 'chip' }, el('span', { class: 'chip-label' }, 'source'), ' ', st.source || '?'),
    el('span', { class: 'chip' }, `${num(st.width)}×${num(st.height)} ${st.pixel_type || ''}`),
    el('span', { class: 'chip', title: 'Frame interval set on the camera (target rate)' },
      el('span', { class: 'chip-label' }, 'interval'), ' ',
      interval ? `${fmtMs(interval)} ms (${(1000 / interval).toFixed(1)} fps)` : '–'),
    counterChip('frames_acquired', 'acquired', num(st.frames_acquired), null),
    el('span', { class: 'chip', dataset: { counter: 'acquisition_fps' }, title: 'Measured from frames_acquired' },
      el('span', { class: 'chip-label' }, 'acq'), ' ', el('span', { class: 'chip-value' }, acqFps), ' fps'),
    counterChip('frames_lost_no_buffer', 'lost (no buffer)', num(st.frames_lost_no_buffer), 'bad',
      'Frames the camera produced but no buffer was free'),
    counterChip('frames_dropped_ring', 'ring drops', num(st.frames_dropped_ring), 'bad',
      'Frames dropped by the ingest ring overflow policy'),
    counterChip('frames_late', 'late', num(st.frames_late), 'warn', 'Frames acquired later than their schedule'),
    counterChip('source_stalls', st.source_stalled ? 'STALLED, stalls' : 'stalls', num(st.source_stalls), 'warn',
      st.source_stalled
        ? `No frame from the source for ${Number(st.seconds_since_last_frame).toFixed(1)} s`
        : 'Times the source sent no frame for ten frame intervals (at least 1 s)'),
    el('span', { class: 'chip', title: 'Ingest ring depth / capacity' },
      el('span', { class: 'chip-label' }, 'ring'), ' ', `${num(st.ring_depth)}/${num(st.ring_capacity)}`),
    counterChip('stage_dropped', 'stage drops', stageDrops, 'warn', perStage('frames_dropped') || 'Frames dropped by stage queues'),
    counterChip('stage_errors', 'stage errors', stageErrors, 'bad', perStage('errors') || 'Stage processing errors'),
    counterChip('subscriber_dropped', 'subscriber drops', subDrops, 'warn',
      subs.filter((s) => num(s.dropped) > 0).map((s) => `#${s.id} ${s.stream}: ${s.dropped}`).join(', ') ||
      'Frames dropped by slow subscribers (previews, recorders)'),
    counterChip('detections_dropped', 'detections dropped', num(ev.detections_dropped), 'bad',
      'Detections the rule engine could not accept'),
    el('span', { class: 'chip', title: 'detections / events / actions (acknowledged)' },
      el('span', { class: 'chip-label' }, 'events'), ' ',
      `${num(ev.detections)} det · ${num(ev.events)} ev · ${num(ev.actions)} act (${num(ev.actions_acknowledged)} ack)`),
  ];

  const rec = st.recording;
  if (rec) {
    const recording = rec.state === 'recording';
    chips.push(el('span', { class: 'chip recording' + (recording ? ' on' : ''), title: rec.path || '' },
      recording ? '● REC ' : (rec.state || 'recording') + ' ',
      `${num(rec.frames_written)} fr · ${fmtBytes(num(rec.bytes_written))}`,
      num(rec.backlog_frames) ? ` · backlog ${rec.backlog_frames}` : ''));
    chips.push(counterChip('frames_not_recorded', 'not recorded', num(rec.frames_not_recorded), 'bad',
      'Frames that could not be written to ' + (rec.path || 'the recording')));
  }
  chips.push(el('span', { class: 'chip muted', title: 'daemon uptime / acquisition time' },
    `up ${fmtDuration(st.uptime_s)} · acq ${fmtDuration(st.acquisition_s)}`));

  $('#status-line').replaceChildren(...chips);
  $('#events-summary').textContent = `${num(ev.events)} total`;
}

/** Stage table, updated in place (one <tr data-stage> per stage). */
function renderStages(st) {
  const tbody = $('#stages tbody');
  const seen = new Set();
  for (const s of st.stages || []) {
    seen.add(s.name);
    let tr = tbody.querySelector(`tr[data-stage="${CSS.escape(s.name)}"]`);
    if (!tr) {
      tr = el('tr', { dataset: { stage: s.name } });
      for (const c of ['stream', 'kind', 'in', 'out', 'dropped', 'errors', 'queue', 'latency', 'process', 'model']) {
        tr.append(el('td', { class: 'col-' + c }));
      }
      tbody.append(tr);
    }
    const cell = (c) => tr.querySelector('.col-' + c);
    cell('stream').textContent = s.name;
    cell('kind').textContent = s.kind || '';
    cell('kind').className = 'col-kind kind-' + (s.kind || 'unknown');
    cell('in').textContent = num(s.frames_in);
    const out = cell('out');
    out.textContent = num(s.frames_out);
    if (num(s.frames_synthetic) > 0) {
      out.append(el('span', { class: 'muted small' }, ` (${s.frames_synthetic} synth)`));
    }
    out.title = `${num(s.frames_synthetic)} synthetic (interpolated) frames`;
    const dropped = cell('dropped');
    dropped.textContent = num(s.frames_dropped);
    dropped.classList.toggle('warn', num(s.frames_dropped) > 0);
    const errors = cell('errors');
    errors.textContent = num(s.errors);
    errors.classList.toggle('bad', num(s.errors) > 0);
    const queue = cell('queue');
    const depth = num(s.queue_depth), cap = num(s.queue_capacity);
    queue.textContent = cap ? `${depth}/${cap}` : '–';
    queue.title = s.queue_policy ? 'policy: ' + s.queue_policy : '';
    queue.classList.toggle('warn', cap > 0 && depth >= 0.75 * cap);
    cell('latency').textContent = `${fmtMs(s.latency_p50_ms)} / ${fmtMs(s.latency_p99_ms)}`;
    cell('process').textContent = fmtMs(s.process_p50_ms);
    cell('process').title = `process p99 ${fmtMs(s.process_p99_ms)} ms`;
    cell('model').textContent = s.model || '–';
    for (const c of ['in', 'out', 'dropped', 'errors', 'queue', 'latency', 'process']) cell(c).classList.add('num');
  }
  for (const tr of [...tbody.children]) if (!seen.has(tr.dataset.stage)) tr.remove();
}

function renderSubscribers(st) {
  const rows = (st.subscribers || []).map((s) => el('tr', { dataset: { subscriber: s.id } },
    el('td', null, s.id),
    el('td', null, s.max_fps ? `${s.stream} (≤ ${s.max_fps} fps)` : s.stream),
    el('td', { class: 'num' }, num(s.delivered)),
    el('td', { class: 'num' + (num(s.dropped) > 0 ? ' warn' : '') }, num(s.dropped)),
    el('td', { class: 'num' }, `${num(s.queue_depth)}/${num(s.queue_capacity)}`)));
  if (!rows.length) rows.push(el('tr', null, el('td', { class: 'muted', colspan: 5 }, 'none')));
  $('#subscribers tbody').replaceChildren(...rows);
}

/** Rules list, updated in place (one <li data-rule> per rule). */
function renderRules(st) {
  const list = $('#rules');
  const rules = st.rules || [];
  if (!rules.length) {
    list.replaceChildren(el('li', { class: 'empty muted' }, 'no rules configured'));
    return;
  }
  list.querySelector('.empty')?.remove();
  const seen = new Set();
  for (const r of rules) {
    seen.add(r.name);
    let li = list.querySelector(`li[data-rule="${CSS.escape(r.name)}"]`);
    if (!li) {
      li = el('li', { class: 'rule', dataset: { rule: r.name } });
      list.append(li);
    }
    li.classList.toggle('active', !!r.active);
    li.replaceChildren(
      el('div', { class: 'rule-head' },
        el('strong', null, r.name),
        r.active ? el('span', { class: 'badge active', title: 'The rule currently holds its action' }, 'active') : null,
        r.dry_run ? el('span', { class: 'badge dry-run', title: 'Actions are logged, not executed' }, 'dry run') : null),
      el('div', { class: 'rule-summary' }, r.summary || ''),
      el('div', { class: 'rule-stats muted' },
        `triggers ${num(r.triggers)} · matched ${num(r.events_matched)} · suppressed ${num(r.suppressed)}`));
  }
  for (const li of [...list.children]) if (!seen.has(li.dataset.rule)) li.remove();
}

// ---------------------------------------------------------------------------
// Events and actions
// ---------------------------------------------------------------------------

/** A live detection: list entry + a marker on every panel. */
function onDetection(ev) {
  const now = performance.now();
  addEventItem(ev, Date.now());
  state.liveEvents.push({ ev, at: now });
  for (const p of state.panels) p.addMarker(ev, now);
}

/** Recent-events list (newest first). `receivedAt` is a wall-clock ms or null (history). */
function addEventItem(ev, receivedAt) {
  const list = $('#events-list');
  if (list.querySelector(`li[data-id="${CSS.escape(String(ev.id))}"]`)) return;
  const score = typeof ev.score === 'number' ? ev.score.toFixed(2) : '–';
  const li = el('li', {
    class: 'event' + (ev.ground_truth ? ' ground-truth' : ''),
    dataset: { id: ev.id, kind: ev.kind, frame: ev.frame_number },
    title: `detector ${ev.detector || '?'} on ${ev.stream || '?'}, event #${ev.id}`,
  },
  el('span', { class: 'ev-kind' }, ev.kind || 'event'),
  ev.ground_truth ? el('span', { class: 'badge gt' }, 'ground truth') : null,
  el('span', { class: 'ev-score' }, score),
  el('span', { class: 'muted' }, `at ${fmtValue(num(ev.x))}, ${fmtValue(num(ev.y))}`),
  el('span', { class: 'muted' }, `frame ${ev.frame_number ?? '–'}`),
  el('span', { class: 'muted small' }, ev.detector || ''),
  receivedAt ? el('span', { class: 'time muted' }, fmtClock(receivedAt)) : null);
  list.prepend(li);
  capList(list, LIST_LIMIT);
}

/** Recent-actions list (newest first). */
function addActionItem(a) {
  const list = $('#actions');
  if (list.querySelector(`li[data-id="${CSS.escape(String(a.id))}"]`)) return;
  const at = Date.now() - num(a.age_ms);
  const params = Object.entries(a.params || {}).map(([k, v]) => `${k}=${v}`).join(' ');
  const li = el('li', {
    class: 'action phase-' + (a.phase || 'trigger'),
    dataset: { id: a.id, phase: a.phase },
    title: a.executed_by_daemon ? 'executed by the daemon' : 'sent to the control software',
  },
  el('span', { class: 'time muted' }, fmtClock(at)),
  el('strong', { class: 'act-name' }, a.name),
  el('span', { class: 'badge phase ' + (a.phase || '') }, a.phase || ''),
  a.dry_run ? el('span', { class: 'badge dry-run' }, 'dry run') : null,
  a.executed_by_daemon === false ? el('span', { class: 'badge external' }, 'client') : null,
  el('span', { class: 'act-rule muted' }, a.rule),
  params ? el('code', { class: 'act-params' }, params) : null,
  a.frame_number !== null && a.frame_number !== undefined
    ? el('span', { class: 'muted small' }, `frame ${a.frame_number}`) : null,
  a.event_id !== null && a.event_id !== undefined
    ? el('span', { class: 'muted small' }, `event #${a.event_id}`) : null);
  list.prepend(li);
  capList(list, LIST_LIMIT);
}

/**
 * Marker ageing, run a few times a second: fresh markers glow briefly, old ones
 * fade during the last 30 % of their life and are then removed. Done here rather
 * than with a CSS animation: hundreds of animated boxes would cost a repaint per
 * display frame and slow the image panels down.
 */
function markerOpacity(age) {
  const fadeStart = MARKER_LIFETIME_MS * 0.7;
  if (age <= fadeStart) return 1;
  return Math.max(0, 1 - (age - fadeStart) / (MARKER_LIFETIME_MS - fadeStart));
}

function sweepMarkers() {
  const now = performance.now();
  state.liveEvents = state.liveEvents.filter((e) => now - e.at < MARKER_LIFETIME_MS);
  for (const m of document.querySelectorAll('.event-marker')) {
    const age = now - Number(m.dataset.born);
    if (age >= MARKER_LIFETIME_MS) { m.remove(); continue; }
    if (age > 600 && m.classList.contains('fresh')) m.classList.remove('fresh');
    const opacity = markerOpacity(age).toFixed(2);
    if (m.style.opacity !== opacity) m.style.opacity = opacity;
  }
}

// ---------------------------------------------------------------------------
// Image panels
// ---------------------------------------------------------------------------

// 8-bit grey -> packed RGBA (alpha 255) lookup, in the platform's byte order,
// so a frame is converted with one table read and one 32-bit store per pixel.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const GREY_TO_RGBA = new Uint32Array(256);
for (let g = 0; g < 256; g++) {
  GREY_TO_RGBA[g] = LITTLE_ENDIAN
    ? ((0xff << 24) | (g << 16) | (g << 8) | g) >>> 0
    : ((g << 24) | (g << 16) | (g << 8) | 0xff) >>> 0;
}
const utf8 = new TextDecoder('utf-8');

function previewUrl() {
  const url = new URL(withToken('ws/preview'));
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

class Panel {
  constructor(stream) {
    this.root = $('#panel-template').content.firstElementChild.cloneNode(true);
    const q = (sel) => this.root.querySelector(sel);
    this.ui = {
      stream: q('.stream-select'), close: q('.close-panel'), synthetic: q('.synthetic'),
      frame: q('.frame-number'), fps: q('.fps'), view: q('.view'), canvas: q('canvas.preview'),
      markers: q('.markers'), message: q('.panel-message'), mode: q('.contrast-mode'),
      low: q('.low'), high: q('.high'), min: q('.min'), max: q('.max'),
      autoOnly: q('.auto-only'), manualOnly: q('.manual-only'),
      downsample: q('.downsample'), zoom: q('.zoom'), window: q('.window'),
      size: q('.size'), cursor: q('.cursor'),
    };
    this.ctx = this.ui.canvas.getContext('2d');
    this.stream = stream;
    this.ws = null;
    this.closed = false;
    this.backoff = WS_BACKOFF_MIN_MS;
    this.reconnectTimer = 0;
    this.creditOut = false;      // a `ready` is outstanding
    this.pending = null;         // newest received frame not yet drawn
    this.drawScheduled = false;
    this.header = null;          // header of the last drawn frame
    this.imageData = null;       // reused while the frame size is unchanged
    this.pixels32 = null;        // Uint32 view on imageData
    this.frameTimes = [];        // performance.now() of drawn frames (fps)
    this.fpsSince = 0;
    const st = state.status || {};
    this.sourceW = num(st.width, 512) || 512;   // full-resolution frame size
    this.sourceH = num(st.height, 512) || 512;

    this.root.dataset.stream = stream;
    this.refreshStreamOptions();
    this.bindControls();
    this.layout();
    // Re-fit on panel resize (window resize, panels added/removed).
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(this.ui.view);
    // Events that are still fresh are shown on a newly opened panel too.
    for (const { ev, at } of state.liveEvents) this.addMarker(ev, at);
    this.connect();
  }

  // ---- controls -----------------------------------------------------------

  refreshStreamOptions() {
    const sel = this.ui.stream;
    const names = state.streams.slice();
    if (this.stream && !names.includes(this.stream)) names.push(this.stream); // keep the current choice visible
    sel.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
    sel.value = this.stream;
  }

  bindControls() {
    const ui = this.ui;
    ui.close.addEventListener('click', () => this.close());

    ui.stream.addEventListener('change', () => {
      this.stream = ui.stream.value;
      this.root.dataset.stream = this.stream;
      this.header = null;
      ui.synthetic.hidden = true;
      this.resetFps();
      this.sendConfig();
    });

    ui.mode.addEventListener('change', () => {
      const manual = ui.mode.value === 'manual';
      if (manual && this.header) {
        // Start manual contrast from what is on screen now.
        ui.min.value = Math.round(num(this.header.display_min));
        ui.max.value = Math.round(num(this.header.display_max));
      }
      ui.autoOnly.hidden = manual;
      ui.manualOnly.hidden = !manual;
      this.sendConfig();
    });

    // Number fields: send while typing (debounced) and at once on commit.
    let debounce = 0;
    for (const input of [ui.low, ui.high, ui.min, ui.max]) {
      input.addEventListener('input', () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => this.sendConfig(), 300);
      });
      input.addEventListener('change', () => { clearTimeout(debounce); this.sendConfig(); });
    }

    ui.downsample.addEventListener('change', () => this.sendConfig());
    ui.zoom.addEventListener('change', () => this.layout(true));

    // Cursor position in full-resolution pixel coordinates.
    ui.canvas.addEventListener('mousemove', (e) => {
      const r = ui.canvas.getBoundingClientRect();
      if (!r.width || !r.height) return;
      const x = Math.floor(((e.clientX - r.left) / r.width) * this.sourceW);
      const y = Math.floor(((e.clientY - r.top) / r.height) * this.sourceH);
      ui.cursor.textContent = `x ${x}  y ${y}`;
    });
    ui.canvas.addEventListener('mouseleave', () => { ui.cursor.textContent = ''; });
  }

  /** The config message for the server; null if the inputs are invalid. */
  config() {
    const ui = this.ui;
    const val = (input, fallback) => {
      const v = parseFloat(input.value);
      return Number.isFinite(v) ? v : fallback;
    };
    const cfg = {
      type: 'config',
      stream: this.stream,
      contrast: ui.mode.value,
      low: val(ui.low, 0.1),
      high: val(ui.high, 99.9),
      min: val(ui.min, 0),
      max: val(ui.max, 65535),
      downsample: parseInt(ui.downsample.value, 10) || 0,
    };
    const autoBad = !(cfg.low >= 0 && cfg.high <= 100 && cfg.low < cfg.high);
    const manualBad = !(cfg.min < cfg.max);
    ui.low.classList.toggle('invalid', autoBad);
    ui.high.classList.toggle('invalid', autoBad);
    ui.min.classList.toggle('invalid', manualBad);
    ui.max.classList.toggle('invalid', manualBad);
    if (cfg.contrast === 'auto' ? autoBad : manualBad) return null;
    return cfg;
  }

  sendConfig() {
    const cfg = this.config();
    if (!cfg || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify(cfg));
    // After an error the server may have spent our credit: give a fresh one.
    if (!this.creditOut) this.sendReady();
  }

  sendReady() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send('{"type":"ready"}');
    this.creditOut = true;
  }

  // ---- socket -------------------------------------------------------------

  connect() {
    if (this.closed) return;
    let ws;
    try {
      ws = new WebSocket(previewUrl());
    } catch (e) {
      this.scheduleReconnect();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.creditOut = false;

    ws.onopen = () => {
      this.showMessage(null);
      this.resetFps();
      const cfg = this.config() || { ...this.defaultsConfig() };
      ws.send(JSON.stringify(cfg));
      this.sendReady();
    };
    ws.onmessage = (e) => {
      if (typeof e.data === 'string') this.onText(e.data);
      else this.onFrame(e.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.creditOut = false;
      if (this.closed) return;
      this.showMessage('preview disconnected – reconnecting…', 'info');
      this.scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows and reconnects */ };
  }

  /** Config with default contrast, used if the user's inputs are invalid. */
  defaultsConfig() {
    return { type: 'config', stream: this.stream, contrast: 'auto', low: 0.1, high: 99.9,
      min: 0, max: 65535, downsample: parseInt(this.ui.downsample.value, 10) || 0 };
  }

  scheduleReconnect() {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(WS_BACKOFF_MAX_MS, this.backoff * 1.5);
  }

  onText(text) {
    const msg = parseJson(text);
    if (msg && msg.type === 'error') {
      this.showMessage(msg.message || 'error', 'error');
      this.creditOut = false;   // next config change sends a fresh ready
    }
  }

  onFrame(buf) {
    this.creditOut = false;
    let frame = null;
    try {
      const dv = new DataView(buf);
      const hlen = dv.getUint32(0, true);
      const header = JSON.parse(utf8.decode(new Uint8Array(buf, 4, hlen)));
      const w = header.width | 0, h = header.height | 0;
      if (w <= 0 || h <= 0 || buf.byteLength < 4 + hlen + w * h) throw new Error('truncated frame');
      frame = { header, pixels: new Uint8Array(buf, 4 + hlen, w * h) };
    } catch (e) {
      console.warn('bad preview frame', e);
      this.showMessage('bad frame from server: ' + e.message, 'error');
      this.sendReady();         // keep the stream going
      return;
    }
    this.backoff = WS_BACKOFF_MIN_MS;
    this.showMessage(null);   // frames flow again (clear errors in arrival order)
    this.pending = frame;
    this.scheduleDraw();
  }

  /** Draw on the next animation frame; a timer covers throttled/hidden tabs. */
  scheduleDraw() {
    if (this.drawScheduled) return;
    this.drawScheduled = true;
    const run = () => {
      if (!this.drawScheduled) return;
      this.drawScheduled = false;
      cancelAnimationFrame(raf);
      clearTimeout(timer);
      this.draw();
    };
    const raf = requestAnimationFrame(run);
    const timer = setTimeout(run, 250);
  }

  draw() {
    const frame = this.pending;
    this.pending = null;
    if (!frame || this.closed) return;
    const { header, pixels } = frame;
    const w = header.width, h = header.height;
    const canvas = this.ui.canvas;

    // (Re)allocate only when the frame size changes.
    if (!this.imageData || this.imageData.width !== w || this.imageData.height !== h) {
      canvas.width = w;
      canvas.height = h;
      this.imageData = this.ctx.createImageData(w, h);
      this.pixels32 = new Uint32Array(this.imageData.data.buffer);
    }
    const out = this.pixels32;
    for (let i = 0, n = w * h; i < n; i++) out[i] = GREY_TO_RGBA[pixels[i]];
    this.ctx.putImageData(this.imageData, 0, 0);

    // Full-resolution size drives zoom and marker placement.
    const sw = num(header.source_width, w) || w, sh = num(header.source_height, h) || h;
    const sizeChanged = sw !== this.sourceW || sh !== this.sourceH;
    this.sourceW = sw;
    this.sourceH = sh;
    if (sizeChanged || !this.header) this.layout();

    this.header = header;
    const ui = this.ui;
    ui.frame.textContent = String(header.frame_number);
    ui.synthetic.hidden = !header.synthetic;
    ui.window.textContent = `${fmtValue(header.display_min)} – ${fmtValue(header.display_max)}`;
    const ds = num(header.downsample, 1);
    ui.size.textContent = ds > 1 ? `${w}×${h} (1:${ds} of ${sw}×${sh})` : `${w}×${h}`;
    // The stream this image really comes from (differs from data-stream while a switch is in
    // flight), so that the UI, and tests, can tell.
    this.root.dataset.shownStream = header.stream || '';

    const now = performance.now();
    if (!this.fpsSince) this.fpsSince = now;
    this.frameTimes.push(now);
    this.updateFps();

    this.sendReady();   // one credit per drawn frame
  }

  resetFps() {
    this.frameTimes = [];
    this.fpsSince = 0;
    this.ui.fps.textContent = '–';
  }

  /** Displayed frames per second over the last ~2 s (decays when frames stop). */
  updateFps() {
    if (!this.fpsSince) return;
    const now = performance.now();
    while (this.frameTimes.length && now - this.frameTimes[0] > FPS_WINDOW_MS) this.frameTimes.shift();
    const span = Math.min(FPS_WINDOW_MS, Math.max(now - this.fpsSince, 250));
    const fps = (this.frameTimes.length * 1000) / span;
    this.ui.fps.textContent = fps.toFixed(fps < 10 ? 1 : 0);
  }

  showMessage(text, kind) {
    const m = this.ui.message;
    if (!text) {
      m.hidden = true;
      this.root.classList.remove('has-error');
      return;
    }
    m.textContent = text;
    m.className = 'panel-message ' + (kind || 'info');
    m.hidden = false;
    this.root.classList.toggle('has-error', kind === 'error');
  }

  // ---- zoom / layout ------------------------------------------------------

  /**
   * Size the canvas and the marker overlay identically. fit = panel width;
   * 1x/2x/4x = full-resolution pixels × zoom (independent of downsampling).
   */
  layout(keepCentre = false) {
    const ui = this.ui, view = ui.view;
    const zoom = ui.zoom.value;
    // Remember the centre of the visible area to keep it when zooming.
    const cx = view.scrollWidth ? (view.scrollLeft + view.clientWidth / 2) / view.scrollWidth : 0.5;
    const cy = view.scrollHeight ? (view.scrollTop + view.clientHeight / 2) / view.scrollHeight : 0.5;

    let w, h;
    if (zoom === 'fit') {
      view.classList.remove('zoomed');
      w = view.clientWidth || 300;
      h = (w * this.sourceH) / this.sourceW;
    } else {
      view.classList.add('zoomed');
      const z = parseFloat(zoom) || 1;
      w = this.sourceW * z;
      h = this.sourceH * z;
    }
    for (const node of [ui.canvas, ui.markers]) {
      node.style.width = w + 'px';
      node.style.height = h + 'px';
    }
    this.root.dataset.zoom = zoom;
    if (keepCentre && zoom !== 'fit') {
      view.scrollLeft = cx * view.scrollWidth - view.clientWidth / 2;
      view.scrollTop = cy * view.scrollHeight - view.clientHeight / 2;
    }
  }

  // ---- markers ------------------------------------------------------------

  /** A box at the event's bbox (or a 32 px box around x,y), in % of the full-res frame. */
  addMarker(ev, bornAt) {
    const sw = this.sourceW, sh = this.sourceH;
    const b = ev.bbox;
    let x, y, w, h;
    if (b && num(b.width) > 0 && num(b.height) > 0) {
      x = num(b.x); y = num(b.y); w = num(b.width); h = num(b.height);
    } else {
      w = h = DEFAULT_MARKER_PX;
      x = num(ev.x) - w / 2; y = num(ev.y) - h / 2;
    }
    const score = typeof ev.score === 'number' ? ' ' + ev.score.toFixed(2) : '';
    const marker = el('div', {
      class: 'event-marker' + (ev.ground_truth ? ' ground-truth' : '') + (y < sh * 0.08 ? ' label-below' : '') +
        (x + w > sw * 0.8 ? ' label-left' : ''),
      dataset: { kind: ev.kind, frame: ev.frame_number, id: ev.id, born: bornAt },
      title: `${ev.kind} #${ev.id} · frame ${ev.frame_number} · ${ev.detector || ''}` +
        (ev.ground_truth ? ' (ground truth)' : ''),
    }, el('span', { class: 'marker-label' }, (ev.ground_truth ? 'gt ' : '') + (ev.kind || 'event') + score));
    marker.style.left = (x / sw) * 100 + '%';
    marker.style.top = (y / sh) * 100 + '%';
    marker.style.width = (w / sw) * 100 + '%';
    marker.style.height = (h / sh) * 100 + '%';
    const age = performance.now() - bornAt;
    marker.style.opacity = markerOpacity(age).toFixed(2);
    if (age < 600) marker.classList.add('fresh');
    this.ui.markers.append(marker);
    while (this.ui.markers.childElementCount > MARKERS_PER_PANEL) this.ui.markers.firstElementChild.remove();
  }

  close() {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.resizeObserver.disconnect();
    if (this.ws) this.ws.close();
    this.ws = null;
    this.root.remove();
    state.panels = state.panels.filter((p) => p !== this);
  }
}

function addPanel(stream) {
  const panel = new Panel(stream);
  $('#panels').append(panel.root);
  panel.layout();
  state.panels.push(panel);
  return panel;
}

/** Up to 3 panels on load, image streams first, detect streams after. */
function initialPanels() {
  state.panelsInitialised = true;
  const isDetect = (s) => state.stageKinds.get(s) === 'detect';
  const ordered = [...state.streams.filter((s) => !isDetect(s)), ...state.streams.filter(isDetect)];
  for (const s of ordered.slice(0, MAX_INITIAL_PANELS)) addPanel(s);
}

/** "+ panel": the first stream not shown yet, else the first stream. */
function onAddPanel() {
  const shown = new Set(state.panels.map((p) => p.stream));
  const isDetect = (s) => state.stageKinds.get(s) === 'detect';
  const ordered = [...state.streams.filter((s) => !isDetect(s)), ...state.streams.filter(isDetect)];
  const stream = ordered.find((s) => !shown.has(s)) || ordered[0] || 'raw';
  addPanel(stream);
}

// ---------------------------------------------------------------------------
// Chart: acquisition fps (top) and per-stage latency p50 (bottom)
// ---------------------------------------------------------------------------

const PALETTE = ['#4fc3f7', '#ffb74d', '#ba68c8', '#81c784', '#f06292', '#fff176', '#90a4ae', '#4db6ac'];
const stageColours = new Map();
function stageColour(name) {
  if (!stageColours.has(name)) stageColours.set(name, PALETTE[stageColours.size % PALETTE.length]);
  return stageColours.get(name);
}

function addChartSample(st) {
  const t = performance.now() / 1000;
  const interval = num(st.frame_interval_ms);
  const lat = new Map();
  for (const s of st.stages || []) {
    if (typeof s.latency_p50_ms === 'number') lat.set(s.name, s.latency_p50_ms);
    stageColour(s.name);
  }
  state.chart.push({
    t,
    fps: state.acqFps,
    targetFps: st.state === 'running' && interval > 0 ? 1000 / interval : null,
    lat,
  });
  while (state.chart.length && t - state.chart[0].t > CHART_SPAN_S) state.chart.shift();
}

/** A round upper bound for an axis (1, 2, 5 × 10^n). */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function drawChart() {
  const canvas = $('#chart');
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 360, cssH = canvas.clientHeight || 220;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  ctx.font = '10px system-ui, sans-serif';
  ctx.textBaseline = 'middle';

  const now = performance.now() / 1000;
  const samples = state.chart;
  const half = cssH / 2;
  const stages = [...stageColours.keys()].filter((n) => state.stageKinds.has(n));

  // Top: acquisition rate (measured, solid) and target (dashed).
  const fpsMax = niceMax(Math.max(1, ...samples.map((s) => Math.max(num(s.fps), num(s.targetFps)))) * 1.1);
  plot(ctx, { x: 0, y: 0, w: cssW, h: half - 4 }, now, fpsMax, 'fps', [
    { label: 'acq fps', colour: '#81c784', values: samples.map((s) => [s.t, s.fps]) },
    { label: 'target', colour: '#81c78499', dash: [4, 3], values: samples.map((s) => [s.t, s.targetFps]) },
  ]);

  // Bottom: latency p50 per stage.
  const latMax = niceMax(Math.max(0.1, ...samples.flatMap((s) => [...s.lat.values()])) * 1.1);
  plot(ctx, { x: 0, y: half + 4, w: cssW, h: half - 4 }, now, latMax, 'ms p50',
    stages.map((name) => ({
      label: name, colour: stageColour(name),
      values: samples.map((s) => [s.t, s.lat.has(name) ? s.lat.get(name) : null]),
    })));
}

/** One small time-series plot: legend rows on top, y axis left, time axis below. */
function plot(ctx, box, now, yMax, unit, series) {
  const axisW = 34, bottomH = 12, rowH = 13;

  // Legend first (it may need several rows), with the latest value of each series.
  const items = [];
  let lx = box.x + axisW, row = 0;
  for (const s of series) {
    const last = [...s.values].reverse().find(([, v]) => typeof v === 'number' && Number.isFinite(v));
    const text = `${s.label} ${last ? fmtMs(last[1]) : '–'}`;
    const itemW = 13 + ctx.measureText(text).width + 10;
    if (lx + itemW > box.x + box.w && lx > box.x + axisW) { row++; lx = box.x + axisW; }
    items.push({ s, text, x: lx, y: box.y + row * rowH + rowH / 2 });
    lx += itemW;
  }
  const legendH = (row + 1) * rowH;

  const px = box.x + axisW, py = box.y + legendH + 2;
  const pw = box.w - axisW - 6, ph = Math.max(10, box.h - legendH - bottomH - 2);
  const X = (t) => px + pw * (1 - (now - t) / CHART_SPAN_S);
  const Y = (v) => py + ph * (1 - v / yMax);

  // Grid and y labels (0, half, max).
  ctx.strokeStyle = '#2a3038';
  ctx.fillStyle = '#8a94a0';
  ctx.lineWidth = 1;
  ctx.setLineDash([]);
  ctx.textAlign = 'right';
  for (const f of [0, 0.5, 1]) {
    const y = Math.round(Y(yMax * f)) + 0.5;
    ctx.beginPath(); ctx.moveTo(px, y); ctx.lineTo(px + pw, y); ctx.stroke();
    const v = yMax * f;
    ctx.fillText(v >= 10 || v === 0 ? v.toFixed(0) : v.toPrecision(2), px - 4, y);
  }
  // Time labels.
  ctx.textAlign = 'center';
  for (const s of [120, 90, 60, 30, 0]) {
    ctx.fillText(s ? `-${s}s` : 'now', Math.min(X(now - s), px + pw - 10), py + ph + bottomH / 2 + 2);
  }
  ctx.save();
  ctx.translate(box.x + 6, py + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(unit, 0, 0);
  ctx.restore();

  // Series, clipped to the plot area; gaps (null) break the line.
  ctx.save();
  ctx.beginPath(); ctx.rect(px, py - 1, pw, ph + 2); ctx.clip();
  for (const s of series) {
    ctx.strokeStyle = s.colour;
    ctx.lineWidth = 1.5;
    ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    let open = false;
    for (const [t, v] of s.values) {
      if (typeof v !== 'number' || !Number.isFinite(v)) { open = false; continue; }
      if (open) ctx.lineTo(X(t), Y(Math.min(v, yMax)));
      else { ctx.moveTo(X(t), Y(Math.min(v, yMax))); open = true; }
    }
    ctx.stroke();
  }
  ctx.restore();

  // Legend.
  ctx.textAlign = 'left';
  for (const { s, text, x, y } of items) {
    ctx.strokeStyle = s.colour;
    ctx.lineWidth = 2;
    ctx.setLineDash(s.dash || []);
    ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 10, y); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = '#c9d1d9';
    ctx.fillText(text, x + 13, y);
  }
}

// ---------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------

function init() {
  setLive(false);

  $('#add-panel').addEventListener('click', onAddPanel);

  const gt = $('#show-ground-truth');
  const applyGt = () => document.body.classList.toggle('hide-ground-truth', !gt.checked);
  gt.addEventListener('change', applyGt);
  applyGt();

  // Housekeeping: marker fading/expiry (4 Hz), fps decay and stalled-status indicator (2 Hz).
  setInterval(sweepMarkers, 250);
  setInterval(() => {
    for (const p of state.panels) p.updateFps();
    updateConnectionIndicator();
  }, 500);

  new ResizeObserver(() => drawChart()).observe($('#chart'));

  fetchStatusOnce();
  connectLive();
}

init();
