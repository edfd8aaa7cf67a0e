// SVG drawing for the Activations dashboard: the overlaid distributions and the (mean, std)
// planes. Plain SVG built by hand, so the dashboard needs no library and no network.

const SVG_NS = 'http://www.w3.org/2000/svg';
const FIXED_POINT = {mean: 0, std: 1};  // SELU's stable fixed point
const REFERENCE_RANGE = [-4, 4];        // N(0, 1) is always in view
const CENTRAL_MASS = 0.99;
const SPIKE_RATIO = 3;  // a bucket 3x taller than a run's next tallest is a spike, not a shape

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

function formatTick(v) {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1000 || a < 0.01) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
}

/** Frame, grid, ticks and axis labels; returns the scales. */
function axes(svg, box, xRange, yRange, labels) {
  const {left, top, width, height} = box;
  const x = (v) => left + (v - xRange[0]) / (xRange[1] - xRange[0]) * width;
  const y = (v) => top + height - (v - yRange[0]) / (yRange[1] - yRange[0]) * height;
  const grid = svgElement('g', {class: 'grid'}, svg);
  for (const t of ticks(xRange[0], xRange[1], labels.xTicks || 8)) {
    svgElement('line', {x1: x(t), x2: x(t), y1: top, y2: top + height}, grid);
    text(svg, x(t), top + height + 15, formatTick(t), {class: 'tick', 'text-anchor': 'middle'});
  }
  for (const t of ticks(yRange[0], yRange[1], labels.yTicks || 5)) {
    svgElement('line', {x1: left, x2: left + width, y1: y(t), y2: y(t)}, grid);
    text(svg, left - 6, y(t) + 4, formatTick(t), {class: 'tick', 'text-anchor': 'end'});
  }
  svgElement('rect', {x: left, y: top, width, height, class: 'frame'}, svg);
  text(svg, left + width / 2, top + height + 34, labels.x, {class: 'axis-label', 'text-anchor': 'middle'});
  text(svg, 0, 0, labels.y, {class: 'axis-label', 'text-anchor': 'middle',
    transform: `translate(${left - 38},${top + height / 2}) rotate(-90)`});
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

/** x range: [-4, 4] and the central 99% of every series' mass. */
export function xRangeOf(series) {
  let [low, high] = REFERENCE_RANGE;
  const tail = (1 - CENTRAL_MASS) / 2;
  for (const s of series) {
    for (const buckets of s.histograms) {
      const lo = quantile(buckets, tail), hi = quantile(buckets, 1 - tail);
      if (lo !== null && isFinite(lo)) low = Math.min(low, lo);
      if (hi !== null && isFinite(hi)) high = Math.max(high, hi);
    }
  }
  const pad = (high - low) * 0.03;
  return [low - pad, high + pad];
}

/** y top: shows N(0, 1)'s peak and every shape, but not a spike towering over its own run. */
function yTopOf(series, xRange) {
  let top = 0.45;
  for (const s of series) {
    const heights = s.curve.filter((b) => b.right > xRange[0] && b.left < xRange[1])
      .map((b) => b.density).sort((a, b) => b - a);
    if (!heights.length) continue;
    const [first, second = 0] = heights;
    top = Math.max(top, first > SPIKE_RATIO * second && second > 0 ? second * 1.4 : first * 1.05);
  }
  return top;
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
 * The overlaid distributions. `series`: [{key, label, colour, curve, histograms, band?}] where
 * curve is [{left, right, density}] and band (seed groups) is {xs, low, high}.
 */
export function drawDistribution(svg, series, {title, width = 760, height = 400}) {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const box = {left: 62, top: 40, width: width - 82, height: height - 92};
  text(svg, box.left, 22, title, {class: 'chart-title'});
  const xRange = xRangeOf(series);
  const yTop = yTopOf(series, xRange);
  const {x, y} = axes(svg, box, xRange, [0, yTop], {x: 'activation value', y: 'density', yTicks: 6});
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
  const normal = [];
  for (let i = 0; i <= 200; i++) {
    const v = xRange[0] + (xRange[1] - xRange[0]) * i / 200;
    normal.push(`${x(v)},${y(normalDensity(v))}`);
  }
  svgElement('polyline', {points: normal.join(' '), class: 'reference'}, plot);

  const spikes = [];
  for (const s of series) {
    const points = stepPoints(s.curve, xRange);
    if (!points.length) continue;
    const d = points.map(([px, py], i) => `${i ? 'L' : 'M'}${x(px).toFixed(1)},${y(Math.min(py, yTop * 1.02)).toFixed(1)}`).join('');
    svgElement('path', {d: d + 'Z', fill: s.colour, class: 'area'}, plot);
    svgElement('path', {d, stroke: s.colour, class: 'curve', 'data-run': s.key}, plot);
    for (const b of s.curve) {
      if (b.density > yTop && b.right > xRange[0] && b.left < xRange[1]) {
        spikes.push({x: x((Math.max(b.left, xRange[0]) + Math.min(b.right, xRange[1])) / 2), value: b.density, colour: s.colour});
      }
    }
  }
  spikes.forEach((spike, i) => {
    const row = box.top + 12 + (i % 4) * 13;
    svgElement('path', {d: `M${spike.x - 5},${row + 1}L${spike.x + 5},${row + 1}L${spike.x},${row - 7}Z`, fill: spike.colour}, svg);
    text(svg, spike.x + 8, row + 1, spike.value.toPrecision(3), {class: 'spike-label', fill: spike.colour});
  });
  const notes = ['dashed: N(0, 1)'];
  if (spikes.length) notes.push('▲ spike clipped, its peak density written beside it');
  text(svg, box.left + box.width, 22, notes.join('   ·   '), {class: 'chart-note', 'text-anchor': 'end'});
  return {clipped: spikes.length > 0, xRange, yTop};
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
