// SVG drawing for the Activations dashboard: the overlaid distributions (activations or
// gradients), the (mean, std) planes and the signal by depth. Plain SVG built by hand, so the
// dashboard needs no library and no network. Drawing only: no requests, no page state.

const SVG_NS = 'http://www.w3.org/2000/svg';
const FIXED_POINT = {mean: 0, std: 1};  // SELU's stable fixed point
const REFERENCE_RANGE = [-4, 4];        // N(0, 1) is always in view for activations
const CENTRAL_MASS = 0.99;
const SPIKE_RATIO = 3;  // a bucket 3x taller than a run's next tallest is a spike, not a shape
const MAX_SPIKE_LABELS = 4;
const MIN_DECADES = 2;  // a depth panel spans at least 100x, so a level line looks level
const SUPERSCRIPT = {'-': '\u207b', 0: '\u2070', 1: '\u00b9', 2: '\u00b2', 3: '\u00b3', 4: '\u2074',
  5: '\u2075', 6: '\u2076', 7: '\u2077', 8: '\u2078', 9: '\u2079'};

export function svgElement(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, x, y, content, attrs = {}) {
  const node = svgElement('text', {x, y, ...attrs}, parent);
  node.textContent = content;
  return node;
}

function tooltip(node, content) {
  svgElement('title', {}, node).textContent = content;
  return node;
}

/**
 * The [[left, right, count], ...] buckets of a histogram as the backend sends it (see
 * avh/dashboard/series.py): {buckets} as they are, or {low, high, counts} with uniform edges,
 * computed exactly as the backend checked them (low + i * width, the last edge high).
 */
export function decodeHistogram(histogram) {
  if (histogram.buckets) return histogram.buckets;
  const {low, high, counts} = histogram;
  const k = counts.length, width = (high - low) / k;
  return counts.map((c, i) => [low + i * width, i + 1 === k ? high : low + (i + 1) * width, c]);
}

/** About `count` round tick values covering [low, high]. */
export function ticks(low, high, count = 6) {
  if (!(high > low)) return [low];
  const raw = (high - low) / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const first = Math.ceil(low / step - 1e-9) * step;
  const values = [];
  for (let v = first; v <= high + step * 1e-9; v += step) values.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return values;
}

function superscript(n) {
  return String(n).split('').map((c) => SUPERSCRIPT[c] || c).join('');
}

/**
 * Labels for linear ticks: plain numbers, or, for tiny or huge ones (gradients, their
 * densities), numbers times one power of ten that the axis label states ("×10⁻³").
 */
function tickLabels(values) {
  const largest = Math.max(...values.map(Math.abs));
  let exponent = 0;
  if (largest > 0 && (largest < 0.01 || largest >= 1e4)) exponent = Math.floor(Math.log10(largest));
  const scale = Math.pow(10, exponent);
  const labels = values.map((v) => v === 0 ? '0' : String(Number((v / scale).toPrecision(3))).replace('-', '\u2212'));
  return {labels, unit: exponent ? `\u00d710${superscript(exponent)}` : ''};
}

/** Frame, grid, ticks and axis labels; returns the scales. */
function axes(svg, box, xRange, yRange, labels) {
  const {left, top, width, height} = box;
  const x = (v) => left + (v - xRange[0]) / (xRange[1] - xRange[0]) * width;
  const y = (v) => top + height - (v - yRange[0]) / (yRange[1] - yRange[0]) * height;
  const grid = svgElement('g', {class: 'grid'}, svg);
  const xTicks = ticks(xRange[0], xRange[1], labels.xTicks || 8), xText = tickLabels(xTicks);
  xTicks.forEach((t, i) => {
    svgElement('line', {x1: x(t), x2: x(t), y1: top, y2: top + height}, grid);
    text(svg, x(t), top + height + 15, xText.labels[i], {class: 'tick', 'text-anchor': 'middle'});
  });
  const yTicks = ticks(yRange[0], yRange[1], labels.yTicks || 5), yText = tickLabels(yTicks);
  yTicks.forEach((t, i) => {
    svgElement('line', {x1: left, x2: left + width, y1: y(t), y2: y(t)}, grid);
    text(svg, left - 6, y(t) + 4, yText.labels[i], {class: 'tick', 'text-anchor': 'end'});
  });
  svgElement('rect', {x: left, y: top, width, height, class: 'frame'}, svg);
  text(svg, left + width / 2, top + height + 34, labels.x + (xText.unit ? ` (${xText.unit})` : ''),
    {class: 'axis-label', 'text-anchor': 'middle'});
  text(svg, 0, 0, labels.y + (yText.unit ? ` (${yText.unit})` : ''), {class: 'axis-label', 'text-anchor': 'middle',
    transform: `translate(${left - 42},${top + height / 2}) rotate(-90)`});
  return {x, y};
}

/** Density of a histogram's buckets: count / (total * width); zero-width buckets get none. */
export function densities(buckets) {
  const total = buckets.reduce((sum, b) => sum + (b[2] || 0), 0);
  return buckets.map(([l, r, c]) => ({
    left: l, right: r, density: total > 0 && r > l ? (c || 0) / (total * (r - l)) : 0,
  }));
}

/** The value below which `fraction` of a histogram's mass lies (linear inside a bucket). */
export function quantile(buckets, fraction) {
  const total = buckets.reduce((sum, b) => sum + (b[2] || 0), 0);
  if (!(total > 0)) return null;
  let below = 0;
  for (const [l, r, c] of buckets) {
    if (below + c >= fraction * total && c > 0) return l + (fraction * total - below) / c * (r - l);
    below += c;
  }
  return buckets[buckets.length - 1][1];
}

/** The density of a run at x (its bucket's height; 0 outside its range). */
export function densityAt(curve, x) {
  for (const b of curve) if (x >= b.left && x < b.right) return b.density;
  const last = curve[curve.length - 1];
  return last && x === last.right ? last.density : 0;
}

/**
 * The x range of the distribution chart. Activations: [-4, 4] and the central 99% of every
 * series' mass. Gradients (another scale altogether): symmetric about 0, out to the largest
 * |value| of every series' central 99%.
 */
export function xRangeOf(series, kind = 'activations') {
  const tail = (1 - CENTRAL_MASS) / 2;
  let [low, high] = kind === 'activations' ? REFERENCE_RANGE : [0, 0];
  for (const s of series) {
    for (const buckets of s.histograms) {
      const lo = quantile(buckets, tail), hi = quantile(buckets, 1 - tail);
      if (lo !== null && isFinite(lo)) low = Math.min(low, lo);
      if (hi !== null && isFinite(hi)) high = Math.max(high, hi);
    }
  }
  if (kind !== 'activations') {
    let reach = Math.max(Math.abs(low), Math.abs(high));
    if (!(reach > 0)) {  // every gradient exactly 0: the buckets' own range
      for (const s of series) for (const b of s.histograms) reach = Math.max(reach, Math.abs(b[0][0]), Math.abs(b[b.length - 1][1]));
    }
    reach = reach > 0 ? reach : 1;
    return [-reach * 1.05, reach * 1.05];
  }
  const pad = (high - low) * 0.03;
  return [low - pad, high + pad];
}

/** y top: shows every shape (and N(0, 1)'s peak for activations), not a spike over its own
 *  run. A seed group is judged by its members' own buckets (`memberCurves`): on the group's
 *  common grid a one-bucket spike covers several cells and would no longer look like one. */
function yTopOf(series, xRange, floor) {
  let top = floor;
  for (const s of series) {
    for (const curve of s.memberCurves || [s.curve]) {
      const heights = curve.filter((b) => b.right > xRange[0] && b.left < xRange[1])
        .map((b) => b.density).sort((a, b) => b - a);
      if (!heights.length) continue;
      const [first, second = 0] = heights;
      top = Math.max(top, first > SPIKE_RATIO * second && second > 0 ? second * 1.4 : first * 1.05);
    }
  }
  return top > 0 ? top : 1;
}

function normalDensity(x) {
  return Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
}

/** A step outline of `curve` clipped to the chart: [x, density] points. */
function stepPoints(curve, xRange) {
  const points = [];
  for (const b of curve) {
    if (b.right <= xRange[0] || b.left >= xRange[1]) continue;
    const l = Math.max(b.left, xRange[0]), r = Math.min(b.right, xRange[1]);
    if (!points.length) points.push([l, 0]);
    points.push([l, b.density], [r, b.density]);
  }
  if (points.length) points.push([points[points.length - 1][0], 0]);
  return points;
}

/**
 * The overlaid distributions. `series`: [{key, label, colour, curve, histograms, band?,
 * memberCurves?}] where curve is [{left, right, density}] and a seed group's band is {xs, low,
 * high} and its memberCurves the seeds' own curves. `kind`
 * 'activations' (N(0, 1) dashed for reference) or 'gradients'; `zoom` [low, high] or null.
 * Returns the plot box and the x scale both ways, for zooming by dragging.
 */
export function drawDistribution(svg, series, {title, kind = 'activations', zoom = null, width = 760, height = 400}) {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const box = {left: 66, top: 48, width: width - 86, height: height - 100};
  text(svg, box.left, 20, title, {class: 'chart-title'});
  const activations = kind === 'activations';
  const xRange = zoom || xRangeOf(series, kind);
  const yTop = yTopOf(series, xRange, activations ? 0.45 : 0);
  const xLabel = activations ? 'activation value' : 'gradient of the loss with respect to the layer\u2019s output';
  const {x, y} = axes(svg, box, xRange, [0, yTop], {x: xLabel, y: 'density', yTicks: 6});
  const clip = `clip-${Math.random().toString(36).slice(2)}`;
  svgElement('rect', {...box, x: box.left, y: box.top}, svgElement('clipPath', {id: clip}, svg));
  const plot = svgElement('g', {'clip-path': `url(#${clip})`}, svg);

  for (const s of series) {
    if (!s.band) continue;
    const upper = s.band.xs.map((v, i) => `${x(v)},${y(Math.min(s.band.high[i], yTop * 1.02))}`);
    const lower = s.band.xs.map((v, i) => `${x(v)},${y(Math.min(s.band.low[i], yTop * 1.02))}`).reverse();
    svgElement('polygon', {points: [...upper, ...lower].join(' '), fill: s.colour,
      class: 'band', 'data-group': s.key}, plot);
  }
  if (activations) {
    const normal = [];
    for (let i = 0; i <= 200; i++) {
      const v = xRange[0] + (xRange[1] - xRange[0]) * i / 200;
      normal.push(`${x(v)},${y(normalDensity(v))}`);
    }
    svgElement('polyline', {points: normal.join(' '), class: 'reference'}, plot);
  } else {
    svgElement('line', {x1: x(0), x2: x(0), y1: box.top, y2: box.top + box.height, class: 'zero-line'}, plot);
  }

  const spikes = [];
  for (const s of series) {
    const points = stepPoints(s.curve, xRange);
    if (!points.length) continue;
    const d = points.map(([px, py], i) => `${i ? 'L' : 'M'}${x(px).toFixed(1)},${y(Math.min(py, yTop * 1.02)).toFixed(1)}`).join('');
    svgElement('path', {d: d + 'Z', fill: s.colour, class: 'area'}, plot);
    svgElement('path', {d, stroke: s.colour, class: 'curve', 'data-run': s.key}, plot);
    // One label per clipped peak: neighbouring clipped buckets (a seed group's grid) are one.
    let peak = null;
    for (const b of [...s.curve, null]) {
      const clipped = b && b.density > yTop && b.right > xRange[0] && b.left < xRange[1];
      if (clipped && (!peak || b.density > peak.value)) {
        peak = {x: x((Math.max(b.left, xRange[0]) + Math.min(b.right, xRange[1])) / 2), value: b.density, colour: s.colour};
      } else if (!clipped && peak) {
        spikes.push(peak);
        peak = null;
      }
    }
  }
  // The tallest spikes labelled, one row each; more would only overlap (a hundred ReLU runs).
  spikes.sort((a, b) => b.value - a.value);
  spikes.slice(0, MAX_SPIKE_LABELS).forEach((spike, i) => {
    const row = box.top + 12 + i * 13;
    svgElement('path', {d: `M${spike.x - 5},${row + 1}L${spike.x + 5},${row + 1}L${spike.x},${row - 7}Z`, fill: spike.colour}, svg);
    text(svg, spike.x + 8, row + 1, spike.value.toPrecision(3), {class: 'spike-label', fill: spike.colour});
  });
  const notes = [activations ? 'dashed: N(0, 1)' : 'range: \u00b1 the gradients\u2019 central 99%'];
  if (zoom) notes.push('zoomed');
  if (spikes.length) {
    notes.push('\u25b2 spike clipped, its peak density written beside it' +
      (spikes.length > MAX_SPIKE_LABELS ? ` (the ${MAX_SPIKE_LABELS} tallest of ${spikes.length})` : ''));
  }
  text(svg, box.left + box.width, 40, notes.join('   \u00b7   '), {class: 'chart-note', 'text-anchor': 'end'});
  const invert = (px) => xRange[0] + (px - box.left) / box.width * (xRange[1] - xRange[0]);
  return {clipped: spikes.length > 0, xRange, yTop, box, x, invert};
}

/**
 * One layer's (mean, std) plane: `series` [{key, label, colour, points: [[step, mean, std]],
 * band?: [[minMean, maxMean, minStd, maxStd]]}]; SELU's fixed point (0, 1) marked.
 */
export function drawTrajectories(svg, series, {title, width = 360, height = 290, selected = false}) {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const box = {left: 56, top: 30, width: width - 72, height: height - 78};
  text(svg, box.left, 19, title, {class: selected ? 'chart-title selected' : 'chart-title'});
  let meanLow = -0.5, meanHigh = 0.5, stdLow = 0, stdHigh = 1.5;
  for (const s of series) {
    for (const [, mean, std] of s.points) {
      if (mean !== null) { meanLow = Math.min(meanLow, mean); meanHigh = Math.max(meanHigh, mean); }
      if (std !== null) stdHigh = Math.max(stdHigh, std);
    }
    for (const [m0, m1, , s1] of s.band || []) {
      meanLow = Math.min(meanLow, m0); meanHigh = Math.max(meanHigh, m1); stdHigh = Math.max(stdHigh, s1);
    }
  }
  const padMean = (meanHigh - meanLow) * 0.08;
  const {x, y} = axes(svg, box, [meanLow - padMean, meanHigh + padMean], [stdLow, stdHigh * 1.08],
    {x: 'mean', y: 'std', xTicks: 5, yTicks: 5});
  for (const s of series) {
    if (!s.band) continue;
    const g = svgElement('g', {class: 'band', fill: s.colour, 'data-group': s.key}, svg);
    for (const [m0, m1, s0, s1] of s.band) {
      svgElement('rect', {x: x(m0) - 2, y: y(s1) - 2, width: x(m1) - x(m0) + 4, height: y(s0) - y(s1) + 4}, g);
    }
  }
  const fx = x(FIXED_POINT.mean), fy = y(FIXED_POINT.std);
  svgElement('path', {d: `M${fx - 7},${fy}H${fx + 7}M${fx},${fy - 7}V${fy + 7}`, class: 'fixed-point'}, svg);
  svgElement('circle', {cx: fx, cy: fy, r: 4, class: 'fixed-point'}, svg);
  text(svg, fx + 6, fy + 14, '(0, 1)', {class: 'fixed-point-label'});
  for (const s of series) {
    const pts = s.points.filter(([, m, sd]) => m !== null && sd !== null);
    if (!pts.length) continue;
    const d = pts.map(([, m, sd], i) => `${i ? 'L' : 'M'}${x(m).toFixed(1)},${y(sd).toFixed(1)}`).join('');
    svgElement('path', {d, stroke: s.colour, class: 'trajectory', 'data-run': s.key}, svg);
    const [, m0, s0] = pts[0], [, m1, s1] = pts[pts.length - 1];
    svgElement('circle', {cx: x(m0), cy: y(s0), r: 4, stroke: s.colour, class: 'start'}, svg);
    svgElement('circle', {cx: x(m1), cy: y(s1), r: 4.5, fill: s.colour, class: 'end'}, svg);
  }
  return {x, y};
}

/** A positive number for a log axis: 0.001 ... 5000 plainly, others as 2×10⁻⁵. */
export function formatLogTick(v) {
  if (v >= 1e-3 && v < 1e4) return String(Number(v.toPrecision(2)));
  const exponent = Math.floor(Math.log10(v) + 1e-9);
  const mantissa = Math.round(v / Math.pow(10, exponent));
  return `${mantissa === 1 ? '' : mantissa + '\u00d7'}10${superscript(exponent)}`;
}

/** Tick values of a log axis over [10^lo, 10^hi]: decades, and 2 and 5 times them on short axes. */
function logTicks(lo, hi) {
  const values = [];
  const multiples = hi - lo <= 3.2 ? [1, 2, 5] : [1];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    for (const m of multiples) {
      const v = m * Math.pow(10, e), l = Math.log10(v);
      if (l >= lo - 1e-9 && l <= hi + 1e-9) values.push(v);
    }
  }
  return values;
}

/**
 * One panel of the signal by depth: layers in order on the x axis, a log y axis, a line per
 * series. `series` [{key, label, colour, values: [v or null per layer], band?: {low, high}}];
 * `dashed` for the backward signal. An empty panel says `empty`.
 */
export function drawDepth(svg, series, {title, layers, dashed = false, yLabel = 'std (log scale)',
  empty = 'no data', arrow = '', width = 560, height = 330}) {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const rotate = layers.length > 8 || layers.some((l) => l.length > 12);
  const box = {left: 62, top: 34, width: width - 80, height: height - (rotate ? 130 : 84)};
  text(svg, box.left, 20, title, {class: 'chart-title'});
  if (arrow) text(svg, box.left + box.width, 20, arrow, {class: 'chart-note direction', 'text-anchor': 'end'});
  const positive = [];
  for (const s of series) {
    for (const v of [...s.values, ...(s.band ? [...s.band.low, ...s.band.high] : [])]) if (v > 0 && isFinite(v)) positive.push(v);
  }
  svgElement('rect', {x: box.left, y: box.top, width: box.width, height: box.height, class: 'frame'}, svg);
  if (!positive.length || !layers.length) {
    text(svg, box.left + box.width / 2, box.top + box.height / 2, empty, {class: 'empty-note', 'text-anchor': 'middle'});
    return null;
  }
  let lo = Math.log10(Math.min(...positive)), hi = Math.log10(Math.max(...positive));
  if (hi - lo < MIN_DECADES) { const mid = (hi + lo) / 2; lo = mid - MIN_DECADES / 2; hi = mid + MIN_DECADES / 2; }
  const pad = (hi - lo) * 0.06; lo -= pad; hi += pad;
  const n = layers.length, inset = n > 1 ? Math.min(28, box.width / (2 * n)) : box.width / 2;
  const x = (i) => n > 1 ? box.left + inset + i * (box.width - 2 * inset) / (n - 1) : box.left + box.width / 2;
  const y = (v) => box.top + box.height - (Math.log10(v) - lo) / (hi - lo) * box.height;
  const grid = svgElement('g', {class: 'grid'}, svg);
  for (const t of logTicks(lo, hi)) {
    const decade = Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9;
    svgElement('line', {x1: box.left, x2: box.left + box.width, y1: y(t), y2: y(t), class: decade ? 'decade' : ''}, grid);
    text(svg, box.left - 6, y(t) + 4, formatLogTick(t), {class: 'tick', 'text-anchor': 'end'});
  }
  layers.forEach((layer, i) => {
    svgElement('line', {x1: x(i), x2: x(i), y1: box.top, y2: box.top + box.height}, grid);
    const attrs = rotate
      ? {class: 'tick', 'text-anchor': 'end', transform: `rotate(-40 ${x(i)} ${box.top + box.height + 14})`}
      : {class: 'tick', 'text-anchor': 'middle'};
    text(svg, x(i), box.top + box.height + 16, layer, attrs);
  });
  svgElement('rect', {x: box.left, y: box.top, width: box.width, height: box.height, class: 'frame'}, svg);
  text(svg, box.left + box.width / 2, height - 8, 'layer (input \u2192 output)', {class: 'axis-label', 'text-anchor': 'middle'});
  text(svg, 0, 0, yLabel, {class: 'axis-label', 'text-anchor': 'middle',
    transform: `translate(${box.left - 46},${box.top + box.height / 2}) rotate(-90)`});
  const ok = (v) => v !== null && v !== undefined && v > 0 && isFinite(v);
  for (const s of series) {
    if (!s.band) continue;
    // One polygon per run of layers where the whole band is known.
    let upper = [], lower = [];
    const flush = () => {
      if (upper.length > 1) svgElement('polygon', {points: [...upper, ...lower.reverse()].join(' '), fill: s.colour, class: 'band', 'data-group': s.key}, svg);
      upper = []; lower = [];
    };
    s.band.low.forEach((l, i) => {
      const h = s.band.high[i];
      if (ok(l) && ok(h)) { upper.push(`${x(i).toFixed(1)},${y(h).toFixed(1)}`); lower.push(`${x(i).toFixed(1)},${y(l).toFixed(1)}`); } else flush();
    });
    flush();
  }
  for (const s of series) {
    let d = '', pen = false;
    s.values.forEach((v, i) => {
      if (!ok(v)) { pen = false; return; }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    if (d) svgElement('path', {d, stroke: s.colour, class: dashed ? 'depth-line dashed' : 'depth-line', 'data-run': s.key}, svg);
    s.values.forEach((v, i) => {
      if (!ok(v)) return;
      tooltip(svgElement('circle', {cx: x(i), cy: y(v), r: 3, fill: s.colour, class: 'depth-point'}, svg),
        `${s.label} \u00b7 ${layers[i]} \u00b7 std ${Number(v.toPrecision(3))}`);
    });
  }
  return {x, y, range: [lo, hi]};
}
