// The Activations dashboard page: run selector, layer, step and activations/gradients controls,
// the distribution chart (drag to zoom), the signal by depth and the (mean, std) trajectories.
// It follows live runs by itself at TensorBoard's reload interval, keeps what the user chose
// across refreshes, and redraws a chart only when what it shows changed. It asks the backend
// only for what is on screen, so hundreds of runs stay responsive.
import {decodeHistogram, densities, densityAt, drawDepth, drawDistribution, drawTrajectories,
  svgElement, xRangeOf} from './charts.js';

// Each run's colour comes from the backend (avh.palette: the same activation, the same colour
// in the dashboard and in report.py's figures); runs sharing a colour get shades of it.
const SHADES = [0, 0.38, -0.35, 0.6, -0.55, 0.2, -0.2];  // runs sharing a colour: lighter, darker
const BAND_POINTS = 240;
const MIN_REFRESH_SECONDS = 1;   // however small --reload_interval is
const MIN_DRAG_PIXELS = 4;       // a shorter drag is a click, not a zoom
const MISSING_NAMED = 4;         // runs named per reason in the status line
const DEPTH_KEYS = 24;           // runs or groups named under the depth view
const KIND_NOUN = {activations: 'activations', gradients: 'gradients'};

function element(tag, attrs = {}, parent = null, content = null) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value; else node.setAttribute(key, value);
  }
  if (content !== null) node.textContent = content;
  if (parent) parent.appendChild(node);
  return node;
}

function shade(hex, amount) {
  const rgb = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const mixed = rgb.map((c) => Math.round(amount >= 0 ? c + (255 - c) * amount : c * (1 + amount)));
  return '#' + mixed.map((c) => c.toString(16).padStart(2, '0')).join('');
}

/** A legend number; `small` for gradients, whose values are all far below 0.01. */
function formatNumber(v, signed = false, small = false) {
  if (v === null || v === undefined || !isFinite(v)) return '\u2013';
  const a = Math.abs(v);
  const s = small && a !== 0 && a < 0.01 ? v.toExponential(2) : a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  return (signed && v >= 0 ? '+' + s : s).replace('-', '\u2212');
}

function formatShare(v) {
  return v === null || v === undefined || !isFinite(v) ? '\u2013' : `${(100 * v).toFixed(v < 0.1 ? 1 : 0)}%`;
}

function mean(values) {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function sd(values) {
  const m = mean(values);
  return Math.sqrt(mean(values.map((v) => (v - m) ** 2)));
}

function clock(date) {
  const today = new Date();
  const time = date.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false});
  return date.toDateString() === today.toDateString() ? time : `${date.toISOString().slice(0, 10)} ${time}`;
}

function parseStep(value) {
  return value !== null && /^\d+$/.test(value) ? Number(value) : 'last';
}

/** "3 runs: reason (a, b, c)" per reason, so a hundred runs without gradients stay one line. */
function summariseMissing(missing) {
  const byReason = new Map();
  for (const m of missing) {
    if (!byReason.has(m.reason)) byReason.set(m.reason, []);
    byReason.get(m.reason).push(m.run);
  }
  return [...byReason.entries()].map(([reason, runs]) => runs.length === 1
    ? `${runs[0]}: ${reason}`
    : `${runs.length} runs: ${reason} (${runs.slice(0, MISSING_NAMED).join(', ')}${runs.length > MISSING_NAMED ? ', \u2026' : ''})`)
    .join('; ');
}

class Dashboard {
  constructor(root, base) {
    const params = new URLSearchParams(window.location.search);
    this.base = base;
    this.runs = [];            // from /runs
    this.layers = [];
    this.choices = new Map();  // run -> ticked, as the user set it; other runs: ticked if they have data
    // ?layer=, ?step=, ?kind=gradients, ?groupSeeds=1 open the page so (a link to share, and
    // headless checks).
    this.layer = params.get('layer');
    this.step = parseStep(params.get('step'));
    this.kind = params.get('kind') === 'gradients' ? 'gradients' : 'activations';
    this.groupSeeds = params.get('groupSeeds') === '1';
    this.zooms = new Map();    // kind + layer -> [low, high] of the distribution chart
    this.steps = [];
    this.tickets = new Map();  // request name -> number of the newest; late older answers are dropped
    this.texts = new Map();    // request name -> its last answer's text: unchanged answers change nothing
    this.drawn = new Map();    // chart -> what it was last drawn from: no redraw of the same
    this.refreshing = false;   // a refresh in flight: the timer skips rather than piles up requests
    this.stale = true;         // a chart request failed or is owed: the next refresh asks again
    this.interval = null;      // seconds between refreshes (TensorBoard's --reload_interval)
    this.build(root);
  }

  build(root) {
    root.classList.add('avh-dashboard');
    const header = element('header', {}, root);
    element('h1', {}, header, 'Activations');
    element('span', {class: 'subtitle'}, header,
      'layer distributions of the selected runs, overlaid; the signal by depth; each layer\u2019s (mean, std) over training');
    const tools = element('div', {class: 'tools'}, header);
    this.updated = element('span', {class: 'updated', id: 'updated'}, tools);
    const groupLabel = element('label', {}, tools);
    this.groupBox = element('input', {type: 'checkbox', id: 'group-seeds'}, groupLabel);
    this.groupBox.checked = this.groupSeeds;
    groupLabel.append(' group seeds');
    this.groupBox.addEventListener('change', () => { this.groupSeeds = this.groupBox.checked; this.redraw(); });
    this.reloadButton = element('button', {type: 'button', id: 'reload', title: 'refresh now'}, tools, 'Reload');
    this.reloadButton.addEventListener('click', () => this.refreshAll());

    const layout = element('div', {class: 'layout'}, root);
    const aside = element('aside', {}, layout);
    element('h2', {}, aside, 'Runs');
    this.filterBox = element('input', {type: 'search', id: 'run-filter', placeholder: 'filter runs (regex)'}, aside);
    this.filterBox.addEventListener('input', () => { this.renderRuns(); this.refreshCharts(); });
    const buttons = element('div', {class: 'select-buttons'}, aside);
    element('button', {type: 'button'}, buttons, 'all').addEventListener('click', () => this.selectVisible(true));
    element('button', {type: 'button'}, buttons, 'none').addEventListener('click', () => this.selectVisible(false));
    this.runList = element('ul', {id: 'run-list'}, aside);

    const main = element('main', {}, layout);
    const controls = element('div', {class: 'controls'}, main);
    const layerLabel = element('label', {}, controls, 'Layer ');
    this.layerSelect = element('select', {id: 'layer'}, layerLabel);
    this.layerSelect.addEventListener('change', () => this.chooseLayer(this.layerSelect.value));
    const kinds = element('span', {class: 'kinds', id: 'kind', role: 'radiogroup'}, controls, 'Show ');
    this.kindBoxes = ['activations', 'gradients'].map((kind) => {
      const label = element('label', {}, kinds);
      const box = element('input', {type: 'radio', name: 'avh-kind', value: kind}, label);
      box.checked = kind === this.kind;
      box.addEventListener('change', () => { if (box.checked) { this.kind = kind; this.refreshDistribution(); } });
      label.append(' ' + kind);
      return box;
    });
    const stepLabel = element('label', {class: 'step'}, controls, 'Step ');
    this.stepSlider = element('input', {type: 'range', id: 'step', min: 0, max: 0, value: 0}, stepLabel);
    this.stepText = element('span', {class: 'step-text', id: 'step-text'}, stepLabel, 'last');
    this.stepSlider.addEventListener('input', () => this.onStep());
    this.status = element('div', {class: 'status', id: 'status'}, main);

    const distCard = element('section', {class: 'card'}, main);
    const zoomBar = element('div', {class: 'zoom-bar'}, distCard);
    element('span', {class: 'hint'}, zoomBar, 'drag across the chart to zoom in on an x range; double-click to reset');
    this.zoomButton = element('button', {type: 'button', id: 'reset-zoom', hidden: ''}, zoomBar, 'reset zoom');
    this.zoomButton.addEventListener('click', () => this.setZoom(null));
    const distRow = element('div', {class: 'dist-row'}, distCard);
    this.distSvg = distRow.appendChild(document.createElementNS('http://www.w3.org/2000/svg', 'svg'));
    this.distSvg.id = 'distribution';
    this.legend = element('table', {class: 'legend', id: 'legend'}, element('div', {class: 'legend-box'}, distRow));
    this.attachZoom();

    const depthCard = element('section', {class: 'card', id: 'depth-card'}, main);
    this.depthTitle = element('h2', {}, depthCard, 'Signal by depth');
    element('p', {class: 'hint'}, depthCard,
      'Each run\u2019s std per layer on a log scale: forward (solid) flows from the first layer to the last, ' +
      'so a line that falls there vanishes and one that rises explodes; the backward signal (dashed, the loss ' +
      'gradient) flows from the last layer back to the first, so read it from the right: falling towards ' +
      'layer 1 is a vanishing gradient. Level lines keep their scale.');
    const depthRow = element('div', {class: 'depth-row'}, depthCard);
    this.forwardSvg = depthRow.appendChild(document.createElementNS('http://www.w3.org/2000/svg', 'svg'));
    this.forwardSvg.id = 'depth-forward';
    this.backwardSvg = depthRow.appendChild(document.createElementNS('http://www.w3.org/2000/svg', 'svg'));
    this.backwardSvg.id = 'depth-backward';
    this.depthLegend = element('div', {class: 'depth-legend', id: 'depth-legend'}, depthCard);

    const trajCard = element('section', {class: 'card'}, main);
    element('h2', {}, trajCard, 'Mean and std over training, per layer');
    element('p', {class: 'hint'}, trajCard,
      '\u25cb start, \u25cf end of training; + SELU\u2019s fixed point (mean 0, std 1). Click a panel to show that layer above.');
    this.trajGrid = element('div', {class: 'trajectories', id: 'trajectories'}, trajCard);
  }

  // --- requests ------------------------------------------------------------------------------

  url(route, params) {
    const url = new URL(route, this.base);
    for (const [key, value] of params) url.searchParams.append(key, value);
    return url;
  }

  /** {text, body, changed} of a route's answer; `changed` is false when it is the same text as
   *  the last answer to `name`. Null when a newer request for `name` was made meanwhile. */
  async ask(name, route, params = []) {
    const ticket = (this.tickets.get(name) || 0) + 1;
    this.tickets.set(name, ticket);
    const response = await fetch(this.url(route, params));
    const text = await response.text();
    let body = null;
    try { body = JSON.parse(text); } catch (err) { /* not JSON: reported below */ }
    if (!response.ok) throw new Error((body && body.error) || `${route}: HTTP ${response.status}`);
    if (this.tickets.get(name) !== ticket) return null;
    const changed = this.texts.get(name) !== text;
    this.texts.set(name, text);
    return {text, body, changed};
  }

  say(message, isError = false) {
    if (this.status.textContent === message && this.status.classList.contains('error') === isError) return;
    this.status.textContent = message;
    this.status.classList.toggle('error', isError);
  }

  // --- following the runs ----------------------------------------------------------------------

  async start() {
    try {
      this.interval = (await this.ask('settings', 'settings')).body.reload_interval;
    } catch (err) {
      this.interval = 5;  // an older backend: TensorBoard's default
    }
    await this.refreshAll();
    if (this.interval > 0) {
      const seconds = Math.max(this.interval, MIN_REFRESH_SECONDS);
      this.timer = setInterval(() => { if (this.onScreen()) this.refreshAll(); }, seconds * 1000);
    }
    // Back on the page: catch up at once rather than at the next tick. (In TensorBoard the
    // page sits in an iframe that is hidden, size 0, while another dashboard is shown.)
    document.addEventListener('visibilitychange', () => { if (this.onScreen()) this.refreshAll(); });
    let wasShown = this.onScreen();
    window.addEventListener('resize', () => {
      const shown = this.onScreen();
      if (shown && !wasShown) this.refreshAll();
      wasShown = shown;
    });
  }

  onScreen() {
    return !document.hidden && window.innerWidth > 0 && window.innerHeight > 0;
  }

  /** One refresh: the runs, and the charts when any run changed (or a chart is owed). Skipped
   *  while another is in flight. */
  async refreshAll() {
    if (this.refreshing) return false;
    this.refreshing = true;
    try {
      const changed = await this.loadRuns();
      if (changed || this.stale) await this.refreshCharts();
      this.checked = new Date();
      this.showUpdated();
      return true;
    } finally {
      this.refreshing = false;
    }
  }

  /** /runs, applied without losing the user's choices; true if it changed. */
  async loadRuns() {
    let answer;
    try {
      answer = await this.ask('runs', 'runs');
    } catch (err) {
      this.say(`cannot load the runs: ${err.message}`, true);
      return false;
    }
    if (!answer || !answer.changed) return false;
    this.runs = answer.body.runs;
    const layersChanged = JSON.stringify(this.layers) !== JSON.stringify(answer.body.layers);
    this.layers = answer.body.layers;
    this.assignColours();
    this.renderRuns();
    if (layersChanged) {
      this.layerSelect.replaceChildren(...this.layers.map((l) => element('option', {value: l}, null, l)));
    }
    if (!this.layers.includes(this.layer)) {
      // The first hidden layer with a nonlinearity is the most telling default; else the first.
      this.layer = this.layers.find((l) => /conv3|^3_/.test(l)) || this.layers[0] || null;
    }
    if (this.layer && this.layerSelect.value !== this.layer) this.layerSelect.value = this.layer;
    return true;
  }

  showUpdated() {
    const runs = this.chartRuns();
    const walls = runs.map((r) => r.last_wall_time).filter((t) => t !== null && t !== undefined);
    const steps = runs.map((r) => r.last_step).filter((s) => s !== null && s !== undefined);
    const parts = [];
    if (walls.length) parts.push(`updated ${clock(new Date(Math.max(...walls) * 1000))}`);
    if (steps.length) {
      const last = Math.max(...steps), first = Math.min(...steps);
      parts.push(`last step ${last}` + (first !== last ? ` (runs from ${first})` : ''));
    }
    const text = parts.join(' \u00b7 ') || 'no data yet';
    if (this.updated.textContent !== text) this.updated.textContent = text;
    const follow = this.interval > 0
      ? `refreshes every ${Math.max(this.interval, MIN_REFRESH_SECONDS)} s (TensorBoard's --reload_interval)`
      : 'no auto-refresh: TensorBoard loads the logdir once (--reload_interval 0)';
    this.updated.title = `newest event of the selected runs; checked ${this.checked ? clock(this.checked) : '\u2013'}, ${follow}`;
  }

  // --- runs ----------------------------------------------------------------------------------

  assignColours() {
    const byKey = new Map();
    this.colours = new Map();
    for (const run of [...this.runs].sort((a, b) => a.run.localeCompare(b.run))) {
      const key = run.activation || run.group;
      const index = byKey.get(key) || 0;
      byKey.set(key, index + 1);
      const baseColour = run.colour;
      this.colours.set(run.run, shade(baseColour, SHADES[index % SHADES.length]));
      if (!this.colours.has('group:' + run.group)) this.colours.set('group:' + run.group, baseColour);
    }
  }

  isSelected(run) {
    return this.choices.has(run.run) ? this.choices.get(run.run) : run.layers.length > 0;
  }

  filterPattern() {
    const text = this.filterBox.value.trim();
    if (!text) return null;
    try { return new RegExp(text, 'i'); } catch (err) { return {test: (s) => s.toLowerCase().includes(text.toLowerCase())}; }
  }

  visibleRuns() {
    const pattern = this.filterPattern();
    return this.runs.filter((r) => !pattern || pattern.test(r.run));
  }

  /** Runs on the charts: selected, matching the filter, with data. */
  chartRuns() {
    return this.visibleRuns().filter((r) => this.isSelected(r) && r.layers.length);
  }

  selectVisible(on) {
    for (const run of this.visibleRuns()) if (run.layers.length) this.choices.set(run.run, on);
    this.renderRuns();
    this.refreshCharts();
  }

  renderRuns() {
    const visible = this.visibleRuns();
    const badge = (run) => !run.layers.length ? 'no activation data'
      : run.activation && run.activation !== run.run.split('/').pop() ? run.activation + (run.finished === false ? ' \u00b7 running' : '')
        : run.finished === false ? 'running' : '';
    const rows = visible.map((run) => [run.run, this.isSelected(run), run.layers.length > 0, this.colours.get(run.run), badge(run)]);
    const signature = JSON.stringify(rows);
    if (this.drawn.get('runs') === signature) return;  // the same list: keep its DOM (and scroll)
    this.drawn.set('runs', signature);
    const items = rows.map(([name, selected, hasData, colour, badgeText]) => {
      const item = element('li', {'data-run': name});
      const label = element('label', {}, item);
      const box = element('input', {type: 'checkbox'}, label);
      box.checked = selected;
      box.disabled = !hasData;
      box.addEventListener('change', () => {
        this.choices.set(name, box.checked);
        this.drawn.delete('runs');
        this.renderRuns();
        this.refreshCharts();
      });
      element('span', {class: 'swatch', style: `background:${colour}`}, label);
      element('span', {class: 'run-name'}, label, name);
      if (!hasData) item.classList.add('empty');
      if (badgeText) element('span', {class: 'badge'}, label, badgeText);
      return item;
    });
    this.runList.replaceChildren(...items);
    if (!this.runs.length) this.runList.replaceChildren(element('li', {class: 'empty'}, null, 'no runs in this logdir'));
  }

  chooseLayer(layer) {
    if (this.layer === layer) return;
    this.layer = layer;
    if (this.layerSelect.value !== layer) this.layerSelect.value = layer;
    this.step = 'last';
    this.refreshDistribution();
    this.drawTrajectories();
  }

  onStep() {
    const index = Number(this.stepSlider.value);
    this.step = index >= this.steps.length - 1 ? 'last' : this.steps[index];
    this.showStep();
    clearTimeout(this.stepTimer);
    this.stepTimer = setTimeout(() => { this.refreshDistribution(); this.refreshDepth(); }, 120);
  }

  showStep() {
    const last = this.steps[this.steps.length - 1];
    const text = this.step === 'last' ? `last${last !== undefined ? ` (step ${last})` : ''}` : `step ${this.step}`;
    if (this.stepText.textContent !== text) this.stepText.textContent = text;
  }

  stepPhrase() {
    return this.step === 'last' ? 'the last step' : `step ${this.step}`;
  }

  // --- charts --------------------------------------------------------------------------------

  async refreshCharts() {
    this.stale = false;
    await Promise.all([this.refreshDistribution(), this.refreshDepth(), this.refreshTrajectories()]);
    this.showUpdated();
  }

  redraw() {
    this.drawDistribution();
    this.drawDepth();
    this.drawTrajectories();
  }

  async refreshDistribution() {
    const runs = this.chartRuns().filter((r) => r.layers.includes(this.layer));
    const kind = this.kind;
    if (!this.layer || !runs.length) {
      this.tickets.set('distribution', (this.tickets.get('distribution') || 0) + 1);
      this.distribution = {runs: [], missing: [], steps: [], kind};
      this.say(this.runs.length ? 'no selected run has activation data' : 'no runs with activation data yet');
      this.drawDistribution();
      return;
    }
    if (!this.distribution || !this.distribution.runs.length) this.say('loading\u2026');
    let answer;
    try {
      answer = await this.ask('distribution', 'distribution', [['layer', this.layer], ['step', this.step],
        ['kind', kind], ...runs.map((r) => ['run', r.run])]);
    } catch (err) {
      this.stale = true;
      this.say(`cannot load the distributions: ${err.message}`, true);
      return;
    }
    if (!answer) return;  // a newer request is on its way
    this.distribution = answer.body;
    this.steps = this.distribution.steps;
    const max = String(Math.max(this.steps.length - 1, 0));
    if (this.stepSlider.max !== max) this.stepSlider.max = max;
    const index = String(this.step === 'last' ? this.steps.length - 1 : Math.max(this.steps.indexOf(this.step), 0));
    if (this.stepSlider.value !== index) this.stepSlider.value = index;
    this.showStep();
    const missing = this.distribution.missing;
    this.say(missing.length ? summariseMissing(missing) : '');
    this.drawDistribution();
  }

  zoomKey() {
    return `${this.kind}\n${this.layer}`;
  }

  setZoom(range) {
    if (range) this.zooms.set(this.zoomKey(), range); else this.zooms.delete(this.zoomKey());
    this.drawDistribution();
  }

  drawDistribution() {
    const data = this.distribution || {runs: [], kind: this.kind};
    const kind = data.kind || 'activations';
    const zoom = this.zooms.get(`${kind}\n${this.layer}`) || null;
    const signature = JSON.stringify([this.texts.get('distribution'), data.runs.length, this.groupSeeds, zoom, this.layer, kind]);
    this.zoomButton.hidden = !zoom;
    if (this.dragging) { this.owedDistribution = true; return; }  // after the drag
    if (this.drawn.get('distribution') === signature) return;
    this.drawn.set('distribution', signature);
    const byRun = new Map(data.runs.map((r) => [r.run, r]));
    const series = [];
    const rows = [];
    for (const group of this.groups(data.runs.map((r) => r.run))) {
      const members = group.members.map((name) => byRun.get(name));
      const histograms = members.map((m) => decodeHistogram(m.histogram));
      const curves = histograms.map(densities);
      const entry = {key: group.key, label: group.label, colour: group.colour, histograms};
      if (members.length === 1) {
        entry.curve = curves[0];
      } else {
        // Seeds have different bucket edges: compare them on one grid over what is on screen.
        const [low, high] = zoom || xRangeOf([entry], kind);
        const xs = Array.from({length: BAND_POINTS + 1}, (_, i) => low + (high - low) * i / BAND_POINTS);
        const values = xs.map((x) => curves.map((c) => densityAt(c, x)));
        const avg = values.map(mean);
        entry.curve = xs.slice(0, -1).map((x, i) => ({left: x, right: xs[i + 1], density: avg[i]}));
        entry.band = {xs, low: values.map((v) => Math.min(...v)), high: values.map((v) => Math.max(...v))};
        entry.memberCurves = curves;
      }
      series.push(entry);
      const column = (key) => members.map((m) => m[key]).filter((v) => v !== null && v !== undefined);
      rows.push({group, steps: [...new Set(members.map((m) => m.step))], estimated: members.some((m) => m.stats_from === 'histogram'),
        means: column('mean'), stds: column('std'), zeros: column('zero_fraction')});
    }
    const what = kind === 'activations' ? 'activations' : 'gradients of the loss';
    this.distView = drawDistribution(this.distSvg, series, {kind, zoom,
      title: this.layer ? `${this.layer}: ${what} at ${this.stepPhrase()}` : 'no layer'});
    this.distView.kind = kind;
    this.renderLegend(rows, kind);
  }

  renderLegend(rows, kind) {
    const columns = kind === 'activations' ? ['mean', 'std'] : ['std', 'zeros'];
    const head = element('tr');
    for (const h of ['run', 'step', ...columns]) element('th', {}, head, h);
    const small = kind !== 'activations';
    const spread = (values, signed, format = formatNumber) => values.length > 1
      ? `${format(mean(values), signed, small)} \u00b1 ${format(sd(values), false, small)}`
      : format(values[0], signed, small);
    const body = rows.map(({group, means, stds, zeros, steps, estimated}) => {
      const tr = element('tr', {'data-run': group.key});
      const name = element('td', {class: 'legend-name'}, tr);
      element('span', {class: 'line', style: `background:${group.colour}`}, name);
      name.append(group.label);
      element('td', {class: 'num'}, tr, steps.length === 1 ? String(steps[0]) : `${Math.min(...steps)}\u2013${Math.max(...steps)}`);
      const mark = estimated ? '*' : '';
      if (kind === 'activations') {
        element('td', {class: 'num'}, tr, spread(means, true) + mark);
        element('td', {class: 'num'}, tr, spread(stds, false) + mark);
      } else {
        element('td', {class: 'num'}, tr, spread(stds, false) + mark);
        element('td', {class: 'num'}, tr, zeros.length ? spread(zeros, false, formatShare) : '\u2013');
      }
      return tr;
    });
    this.legend.replaceChildren(head, ...body);
    const note = (content) => {
      const tr = element('tr');
      element('td', {colspan: 2 + columns.length, class: 'hint'}, tr, content);
      this.legend.appendChild(tr);
    };
    if (kind === 'gradients' && rows.length) note('zeros: share of exact zeros (units that pass no gradient)');
    if (rows.some((r) => r.estimated)) note('* estimated from the histogram (not logged)');
    if (this.groupSeeds && rows.some((r) => r.group.members.length > 1)) {
      note('seed groups: mean curve, band = min\u2013max over seeds; values mean \u00b1 sd over seeds');
    }
  }

  /** Drag across the distribution chart to zoom to that x range; double-click to reset. */
  attachZoom() {
    const svg = this.distSvg;
    const point = (event) => {
      const matrix = svg.getScreenCTM();
      return matrix ? new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse()) : null;
    };
    const inside = (p, box) => p && p.x >= box.left && p.x <= box.left + box.width && p.y >= box.top && p.y <= box.top + box.height;
    const clampX = (px, box) => Math.min(Math.max(px, box.left), box.left + box.width);
    svg.addEventListener('pointerdown', (event) => {
      const view = this.distView;
      const p = point(event);
      if (event.button !== 0 || !view || !inside(p, view.box)) return;
      event.preventDefault();
      svg.setPointerCapture(event.pointerId);
      this.dragging = {from: p.x, to: p.x, view,
        rect: svgElement('rect', {class: 'zoom-selection', x: p.x, y: view.box.top, width: 0, height: view.box.height}, svg)};
    });
    svg.addEventListener('pointermove', (event) => {
      const drag = this.dragging;
      const p = point(event);
      if (!drag || !p) return;
      drag.to = clampX(p.x, drag.view.box);
      drag.rect.setAttribute('x', Math.min(drag.from, drag.to));
      drag.rect.setAttribute('width', Math.abs(drag.to - drag.from));
    });
    const finish = () => {
      const drag = this.dragging;
      if (!drag) return;
      this.dragging = null;
      drag.rect.remove();
      if (Math.abs(drag.to - drag.from) >= MIN_DRAG_PIXELS) {
        const a = drag.view.invert(Math.min(drag.from, drag.to)), b = drag.view.invert(Math.max(drag.from, drag.to));
        this.setZoom([a, b]);
      } else if (this.owedDistribution) {
        this.drawDistribution();
      }
      this.owedDistribution = false;
    };
    svg.addEventListener('pointerup', finish);
    svg.addEventListener('pointercancel', finish);
    svg.addEventListener('dblclick', () => this.setZoom(null));
  }

  async refreshDepth() {
    const runs = this.chartRuns();
    const layers = new Set(this.layers);
    for (const r of runs) for (const l of r.gradient_layers || []) layers.add(l);
    if (!runs.length) {
      this.tickets.set('depth', (this.tickets.get('depth') || 0) + 1);
      this.depth = {runs: [], layers: [], missing: []};
      this.drawDepth();
      return;
    }
    let answer;
    try {
      answer = await this.ask('depth', 'depth', [['step', this.step], ...[...layers].map((l) => ['layer', l]),
        ...runs.map((r) => ['run', r.run])]);
    } catch (err) {
      this.stale = true;
      this.depth = {runs: [], layers: [], missing: [], error: err.message};
      this.drawDepth();
      return;
    }
    if (!answer) return;
    this.depth = answer.body;
    this.drawDepth();
  }

  drawDepth() {
    const data = this.depth || {runs: [], layers: [], missing: []};
    const signature = JSON.stringify([this.texts.get('depth'), data.error, this.groupSeeds, this.step]);
    if (this.drawn.get('depth') === signature) return;
    this.drawn.set('depth', signature);
    const byRun = new Map(data.runs.map((r) => [r.run, r]));
    const stepsShown = [...new Set(data.runs.map((r) => r.step))];
    const at = this.step === 'last' ? 'at each run\u2019s last step' : `at step ${this.step}`;
    this.depthTitle.textContent = `Signal by depth ${at}` +
      (stepsShown.length === 1 ? ` (${stepsShown[0]})` : stepsShown.length ? ` (${Math.min(...stepsShown)}\u2013${Math.max(...stepsShown)})` : '');
    const forward = [], backward = [];
    const groups = this.groups(data.runs.map((r) => r.run));
    for (const group of groups) {
      const members = group.members.map((name) => byRun.get(name));
      for (const [side, out] of [['forward', forward], ['backward', backward]]) {
        const lines = members.map((m) => m[side]).filter((v) => v);
        if (!lines.length) continue;
        const entry = {key: group.key, label: group.label, colour: group.colour};
        if (lines.length === 1) {
          entry.values = lines[0];
        } else {
          // Seeds on a log axis: the geometric mean, and the band over the seeds.
          const valuesAt = (i) => lines.map((l) => l[i]).filter((v) => v !== null && v > 0);
          entry.values = data.layers.map((_, i) => { const v = valuesAt(i); return v.length ? Math.exp(mean(v.map(Math.log))) : null; });
          entry.band = {low: data.layers.map((_, i) => { const v = valuesAt(i); return v.length ? Math.min(...v) : null; }),
            high: data.layers.map((_, i) => { const v = valuesAt(i); return v.length ? Math.max(...v) : null; })};
        }
        out.push(entry);
      }
    }
    drawDepth(this.forwardSvg, forward, {title: 'Forward: std of each layer\u2019s output', layers: data.layers,
      arrow: 'signal flows \u2192', empty: data.error || 'no activation_stats/<layer>/std in the selected runs'});
    drawDepth(this.backwardSvg, backward, {title: 'Backward: std of the loss gradient there', layers: data.layers,
      dashed: true, arrow: '\u2190 gradient flows', empty: data.error || 'no selected run logs gradient_stats/<layer>/std'});
    const withoutGradients = data.runs.filter((r) => !r.backward).map((r) => r.run);
    const items = groups.slice(0, DEPTH_KEYS).map((g) => {
      const item = element('span', {class: 'depth-key', 'data-run': g.key});
      element('span', {class: 'line', style: `background:${g.colour}`}, item);
      item.append(g.label);
      return item;
    });
    const notes = [];
    if (groups.length > DEPTH_KEYS) notes.push(`+ ${groups.length - DEPTH_KEYS} more, coloured as in the run list`);
    if (withoutGradients.length) {
      notes.push(withoutGradients.length === data.runs.length ? 'no run logs gradients: forward only'
        : `forward only (no gradient statistics): ${withoutGradients.slice(0, MISSING_NAMED).join(', ')}${withoutGradients.length > MISSING_NAMED ? ', \u2026' : ''}`);
    }
    if (data.missing && data.missing.length) notes.push(summariseMissing(data.missing));
    if (this.groupSeeds && groups.some((g) => g.members.length > 1)) notes.push('seed groups: geometric mean, band = min\u2013max over seeds');
    this.depthLegend.replaceChildren(...items, ...notes.map((n) => element('span', {class: 'hint'}, null, n)));
  }

  async refreshTrajectories() {
    const runs = this.chartRuns();
    const answers = await Promise.all(this.layers.map(async (layer) => {
      const members = runs.filter((r) => r.stat_layers.includes(layer) || r.layers.includes(layer));
      const name = 'trajectory\n' + layer;
      if (!members.length) {
        this.tickets.set(name, (this.tickets.get(name) || 0) + 1);
        this.texts.delete(name);
        return [layer, {runs: []}];
      }
      try {
        const answer = await this.ask(name, 'trajectory', [['layer', layer], ...members.map((r) => ['run', r.run])]);
        return answer ? [layer, answer.body] : null;
      } catch (err) {
        this.stale = true;
        this.texts.delete(name);
        return [layer, {runs: [], error: err.message}];
      }
    }));
    if (answers.some((a) => a === null)) return;  // newer requests are on their way
    this.trajectories = new Map(answers);
    this.drawTrajectories();
  }

  drawTrajectories() {
    const signature = JSON.stringify([this.layers, this.layers.map((l) => this.texts.get('trajectory\n' + l) || ''),
      this.layers.map((l) => (this.trajectories && this.trajectories.get(l) || {}).error || ''), this.groupSeeds, this.layer]);
    if (this.drawn.get('trajectories') === signature) return;
    this.drawn.set('trajectories', signature);
    const panels = [];
    for (const layer of this.layers) {
      const data = (this.trajectories && this.trajectories.get(layer)) || {runs: []};
      const byRun = new Map(data.runs.map((r) => [r.run, r]));
      const series = this.groups(data.runs.map((r) => r.run)).map((group) => {
        const members = group.members.map((name) => byRun.get(name).points);
        if (members.length === 1) return {key: group.key, colour: group.colour, points: members[0]};
        // Average over seeds at the steps every seed has; the band spans the seeds.
        const perStep = new Map();
        for (const points of members) {
          for (const [step, m, s] of points) {
            if (m === null || s === null) continue;
            if (!perStep.has(step)) perStep.set(step, []);
            perStep.get(step).push([m, s]);
          }
        }
        const steps = [...perStep.keys()].filter((s) => perStep.get(s).length === members.length).sort((a, b) => a - b);
        return {
          key: group.key, colour: group.colour,
          points: steps.map((s) => [s, mean(perStep.get(s).map((p) => p[0])), mean(perStep.get(s).map((p) => p[1]))]),
          band: steps.map((s) => {
            const ms = perStep.get(s).map((p) => p[0]), ss = perStep.get(s).map((p) => p[1]);
            return [Math.min(...ms), Math.max(...ms), Math.min(...ss), Math.max(...ss)];
          }),
        };
      });
      const panel = element('div', {class: 'panel' + (layer === this.layer ? ' selected' : ''), 'data-layer': layer});
      const svg = panel.appendChild(document.createElementNS('http://www.w3.org/2000/svg', 'svg'));
      drawTrajectories(svg, series, {title: layer, selected: layer === this.layer});
      if (data.error) element('div', {class: 'status error'}, panel, data.error);
      panel.addEventListener('click', () => this.chooseLayer(layer));
      panels.push(panel);
    }
    this.trajGrid.replaceChildren(...panels);
  }

  /** Runs of one setting that differ only by seed, when "group seeds" is on; else one per run. */
  groups(names) {
    const byName = new Map(this.runs.map((r) => [r.run, r]));
    const groups = new Map();
    for (const name of names) {
      const run = byName.get(name);
      const key = this.groupSeeds && run && run.seed !== null ? run.group : name;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(name);
    }
    return [...groups.entries()].map(([key, members]) => members.length > 1
      ? {key: 'group:' + key, label: `${key} (${members.length} seeds)`, members, colour: this.colours.get('group:' + key)}
      : {key: members[0], label: members[0], members, colour: this.colours.get(members[0])});
  }
}

export async function startDashboard(root, base) {
  const dashboard = new Dashboard(root, base);
  await dashboard.start();
  return dashboard;
}
