// The Activations dashboard page: run selector, layer and step controls, and the two charts.
// Asks the backend only for the layer and step on screen, so hundreds of runs stay responsive.
import {densities, densityAt, drawDistribution, drawTrajectories, xRangeOf} from './charts.js';

// Each run's colour comes from the backend (avh.palette: the same activation, the same colour
// in the dashboard and in report.py's figures); runs sharing a colour get shades of it.
const SHADES = [0, 0.38, -0.35, 0.6, -0.55, 0.2, -0.2];  // runs sharing a colour: lighter, darker
const BAND_POINTS = 240;

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

function formatNumber(v, signed = false) {
  if (v === null || v === undefined || !isFinite(v)) return '–';
  const s = Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
  return signed && v >= 0 ? '+' + s : s.replace('-', '−');
}

function mean(values) {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function sd(values) {
  const m = mean(values);
  return Math.sqrt(mean(values.map((v) => (v - m) ** 2)));
}

class Dashboard {
  constructor(root, base) {
    this.base = base;
    this.runs = [];           // from /runs
    this.layers = [];
    this.selected = new Set();
    this.known = new Set();   // runs seen before: new ones start selected, old choices are kept
    this.layer = null;
    this.steps = [];
    this.step = 'last';
    // ?groupSeeds=1 opens the page grouped (a link to share, and for headless checks).
    this.groupSeeds = new URLSearchParams(window.location.search).get('groupSeeds') === '1';
    this.request = 0;         // newer answers win over late older ones
    this.build(root);
  }

  build(root) {
    root.classList.add('avh-dashboard');
    const header = element('header', {}, root);
    element('h1', {}, header, 'Activations');
    element('span', {class: 'subtitle'}, header,
      'layer distributions of the selected runs, overlaid; and each layer\u2019s (mean, std) over training');
    const tools = element('div', {class: 'tools'}, header);
    const groupLabel = element('label', {}, tools);
    this.groupBox = element('input', {type: 'checkbox', id: 'group-seeds'}, groupLabel);
    this.groupBox.checked = this.groupSeeds;
    groupLabel.append(' group seeds');
    this.groupBox.addEventListener('change', () => { this.groupSeeds = this.groupBox.checked; this.redraw(); });
    this.reloadButton = element('button', {type: 'button', id: 'reload'}, tools, 'Reload');
    this.reloadButton.addEventListener('click', () => this.load());

    const layout = element('div', {class: 'layout'}, root);
    const aside = element('aside', {}, layout);
    element('h2', {}, aside, 'Runs');
    this.filterBox = element('input', {type: 'search', id: 'run-filter', placeholder: 'filter runs (regex)'}, aside);
    this.filterBox.addEventListener('input', () => { this.renderRuns(); this.refresh(); });
    const buttons = element('div', {class: 'select-buttons'}, aside);
    element('button', {type: 'button'}, buttons, 'all').addEventListener('click', () => this.selectVisible(true));
    element('button', {type: 'button'}, buttons, 'none').addEventListener('click', () => this.selectVisible(false));
    this.runList = element('ul', {id: 'run-list'}, aside);

    const main = element('main', {}, layout);
    const controls = element('div', {class: 'controls'}, main);
    const layerLabel = element('label', {}, controls, 'Layer ');
    this.layerSelect = element('select', {id: 'layer'}, layerLabel);
    this.layerSelect.addEventListener('change', () => { this.layer = this.layerSelect.value; this.step = 'last'; this.refresh(); });
    const stepLabel = element('label', {class: 'step'}, controls, 'Step ');
    this.stepSlider = element('input', {type: 'range', id: 'step', min: 0, max: 0, value: 0}, stepLabel);
    this.stepText = element('span', {class: 'step-text'}, stepLabel, 'last');
    this.stepSlider.addEventListener('input', () => this.onStep());
    this.status = element('div', {class: 'status', id: 'status'}, main);

    const distCard = element('section', {class: 'card'}, main);
    const distRow = element('div', {class: 'dist-row'}, distCard);
    this.distSvg = distRow.appendChild(document.createElementNS('http://www.w3.org/2000/svg', 'svg'));
    this.distSvg.id = 'distribution';
    this.legend = element('table', {class: 'legend', id: 'legend'}, distRow);

    const trajCard = element('section', {class: 'card'}, main);
    element('h2', {}, trajCard, 'Mean and std over training, per layer');
    element('p', {class: 'hint'}, trajCard,
      '\u25cb start, \u25cf end of training; + SELU\u2019s fixed point (mean 0, std 1). Click a panel to show that layer above.');
    this.trajGrid = element('div', {class: 'trajectories', id: 'trajectories'}, trajCard);
  }

  url(route, params) {
    const url = new URL(route, this.base);
    for (const [key, value] of params) url.searchParams.append(key, value);
    return url;
  }

  async getJson(route, params = []) {
    const response = await fetch(this.url(route, params));
    let body = null;
    try { body = await response.json(); } catch (err) { /* not JSON: reported below */ }
    if (!response.ok) throw new Error((body && body.error) || `${route}: HTTP ${response.status}`);
    return body;
  }

  say(message, isError = false) {
    this.status.textContent = message;
    this.status.classList.toggle('error', isError);
  }

  async load() {
    this.say('loading runs\u2026');
    try {
      const answer = await this.getJson('runs');
      this.runs = answer.runs;
      this.layers = answer.layers;
    } catch (err) {
      this.say(`cannot load the runs: ${err.message}`, true);
      return;
    }
    for (const run of this.runs) {
      if (!this.known.has(run.run) && run.layers.length) this.selected.add(run.run);
      this.known.add(run.run);
    }
    this.assignColours();
    this.renderRuns();
    this.layerSelect.replaceChildren(...this.layers.map((l) => element('option', {value: l}, null, l)));
    if (!this.layers.includes(this.layer)) {
      // The first hidden layer with a nonlinearity is the most telling default; else the first.
      this.layer = this.layers.find((l) => /conv3|^3_/.test(l)) || this.layers[0] || null;
    }
    if (this.layer) this.layerSelect.value = this.layer;
    await this.refresh();
  }

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
    return this.visibleRuns().filter((r) => this.selected.has(r.run) && r.layers.length);
  }

  selectVisible(on) {
    for (const run of this.visibleRuns()) if (run.layers.length) on ? this.selected.add(run.run) : this.selected.delete(run.run);
    this.renderRuns();
    this.refresh();
  }

  renderRuns() {
    const items = this.visibleRuns().map((run) => {
      const item = element('li', {'data-run': run.run});
      const label = element('label', {}, item);
      const box = element('input', {type: 'checkbox'}, label);
      box.checked = this.selected.has(run.run);
      box.disabled = !run.layers.length;
      box.addEventListener('change', () => {
        box.checked ? this.selected.add(run.run) : this.selected.delete(run.run);
        this.refresh();
      });
      element('span', {class: 'swatch', style: `background:${this.colours.get(run.run)}`}, label);
      element('span', {class: 'run-name'}, label, run.run);
      if (!run.layers.length) {
        item.classList.add('empty');
        element('span', {class: 'badge'}, label, 'no activation data');
      } else if (run.activation && run.activation !== run.run.split('/').pop()) {
        element('span', {class: 'badge'}, label, run.activation + (run.finished === false ? ' \u00b7 running' : ''));
      }
      return item;
    });
    this.runList.replaceChildren(...items);
    if (!this.runs.length) this.runList.replaceChildren(element('li', {class: 'empty'}, null, 'no runs in this logdir'));
  }

  onStep() {
    const index = Number(this.stepSlider.value);
    this.step = index >= this.steps.length - 1 ? 'last' : this.steps[index];
    this.showStep();
    clearTimeout(this.stepTimer);
    this.stepTimer = setTimeout(() => this.refreshDistribution(), 120);
  }

  showStep() {
    const last = this.steps[this.steps.length - 1];
    this.stepText.textContent = this.step === 'last' ? `last${last !== undefined ? ` (step ${last})` : ''}` : `step ${this.step}`;
  }

  async refresh() {
    await Promise.all([this.refreshDistribution(), this.refreshTrajectories()]);
  }

  async refreshDistribution() {
    const runs = this.chartRuns().filter((r) => r.layers.includes(this.layer));
    const ticket = ++this.request;
    if (!this.layer || !runs.length) {
      this.distribution = {runs: [], missing: [], steps: []};
      this.say(this.runs.length ? 'no selected run has activation data' : 'no runs with activation data yet');
      this.drawDistribution();
      return;
    }
    this.say('loading\u2026');
    try {
      const answer = await this.getJson('distribution', [['layer', this.layer], ['step', this.step], ...runs.map((r) => ['run', r.run])]);
      if (ticket !== this.request) return;
      this.distribution = answer;
    } catch (err) {
      if (ticket === this.request) this.say(`cannot load the distributions: ${err.message}`, true);
      return;
    }
    this.steps = this.distribution.steps;
    this.stepSlider.max = Math.max(this.steps.length - 1, 0);
    this.stepSlider.value = this.step === 'last' ? this.steps.length - 1 : Math.max(this.steps.indexOf(this.step), 0);
    this.showStep();
    const missing = this.distribution.missing.map((m) => `${m.run}: ${m.reason}`);
    this.say(missing.length ? missing.join('; ') : '');
    this.drawDistribution();
  }

  async refreshTrajectories() {
    const runs = this.chartRuns();
    const ticket = this.trajectoryTicket = (this.trajectoryTicket || 0) + 1;
    const answers = await Promise.all(this.layers.map(async (layer) => {
      const members = runs.filter((r) => r.stat_layers.includes(layer) || r.layers.includes(layer));
      if (!members.length) return [layer, {runs: []}];
      try {
        return [layer, await this.getJson('trajectory', [['layer', layer], ...members.map((r) => ['run', r.run])])];
      } catch (err) {
        return [layer, {runs: [], error: err.message}];
      }
    }));
    if (ticket !== this.trajectoryTicket) return;
    this.trajectories = new Map(answers);
    this.drawTrajectories();
  }

  redraw() {
    this.drawDistribution();
    this.drawTrajectories();
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

  drawDistribution() {
    const data = this.distribution || {runs: []};
    const byRun = new Map(data.runs.map((r) => [r.run, r]));
    const series = [];
    const rows = [];
    for (const group of this.groups(data.runs.map((r) => r.run))) {
      const members = group.members.map((name) => byRun.get(name));
      const curves = members.map((m) => densities(m.buckets));
      const entry = {key: group.key, label: group.label, colour: group.colour, histograms: members.map((m) => m.buckets)};
      if (members.length === 1) {
        entry.curve = curves[0];
      } else {
        // Seeds have different bucket edges: compare them on one grid.
        const [low, high] = xRangeOf([entry]);
        const xs = Array.from({length: BAND_POINTS + 1}, (_, i) => low + (high - low) * i / BAND_POINTS);
        const values = xs.map((x) => curves.map((c) => densityAt(c, x)));
        const avg = values.map(mean);
        entry.curve = xs.slice(0, -1).map((x, i) => ({left: x, right: xs[i + 1], density: avg[i]}));
        entry.band = {xs, low: values.map((v) => Math.min(...v)), high: values.map((v) => Math.max(...v))};
      }
      series.push(entry);
      const means = members.map((m) => m.mean).filter((v) => v !== null);
      const stds = members.map((m) => m.std).filter((v) => v !== null);
      const steps = [...new Set(members.map((m) => m.step))];
      rows.push({group, means, stds, steps, estimated: members.some((m) => m.stats_from === 'histogram')});
    }
    const stepText = this.step === 'last' ? 'last step' : `step ${this.step}`;
    drawDistribution(this.distSvg, series, {title: this.layer ? `${this.layer} at the ${stepText}` : 'no layer'});
    this.renderLegend(rows);
  }

  renderLegend(rows) {
    const head = element('tr');
    for (const h of ['run', 'step', 'mean', 'std']) element('th', {}, head, h);
    const body = rows.map(({group, means, stds, steps, estimated}) => {
      const tr = element('tr', {'data-run': group.key});
      const name = element('td', {class: 'legend-name'}, tr);
      element('span', {class: 'line', style: `background:${group.colour}`}, name);
      name.append(group.label);
      element('td', {class: 'num'}, tr, steps.length === 1 ? String(steps[0]) : `${Math.min(...steps)}\u2013${Math.max(...steps)}`);
      const spread = (values, signed) => values.length > 1
        ? `${formatNumber(mean(values), signed)} \u00b1 ${formatNumber(sd(values))}`
        : formatNumber(values[0], signed);
      element('td', {class: 'num'}, tr, spread(means, true) + (estimated ? '*' : ''));
      element('td', {class: 'num'}, tr, spread(stds, false) + (estimated ? '*' : ''));
      return tr;
    });
    this.legend.replaceChildren(head, ...body);
    if (rows.some((r) => r.estimated)) {
      const note = element('tr');
      element('td', {colspan: 4, class: 'hint'}, note, '* estimated from the histogram (not logged)');
      this.legend.appendChild(note);
    }
    if (this.groupSeeds && rows.some((r) => r.group.members.length > 1)) {
      const note = element('tr');
      element('td', {colspan: 4, class: 'hint'}, note, 'seed groups: mean curve, band = min\u2013max over seeds; values mean \u00b1 sd over seeds');
      this.legend.appendChild(note);
    }
  }

  drawTrajectories() {
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
      panel.addEventListener('click', () => {
        if (this.layer === layer) return;
        this.layer = layer;
        this.layerSelect.value = layer;
        this.step = 'last';
        this.refreshDistribution();
        this.drawTrajectories();
      });
      panels.push(panel);
    }
    this.trajGrid.replaceChildren(...panels);
  }
}

export async function startDashboard(root, base) {
  const dashboard = new Dashboard(root, base);
  await dashboard.load();
  return dashboard;
}
