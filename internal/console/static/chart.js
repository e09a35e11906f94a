// A small live line chart drawn as SVG: a fixed window of samples per
// series, a y axis scaled to the largest value shown, a legend with the
// latest value. No library.

const NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#2563eb', '#16a34a', '#9333ea', '#ea580c', '#dc2626', '#0891b2'];

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

export class LineChart {
  // series: [{key, label}]; format(v) prints a value.
  constructor(container, { title, series, points = 60, format = (v) => String(v) }) {
    this.series = series.map((s, i) => ({ ...s, color: COLORS[i % COLORS.length], values: [] }));
    this.points = points;
    this.format = format;
    this.root = document.createElement('figure');
    this.root.className = 'chart';
    const cap = document.createElement('figcaption');
    cap.textContent = title;
    this.svg = svg('svg', { viewBox: '0 0 400 120', preserveAspectRatio: 'none', role: 'img', 'aria-label': title });
    this.legend = document.createElement('ul');
    this.legend.className = 'legend';
    this.root.append(cap, this.svg, this.legend);
    container.append(this.root);
    this.draw();
  }

  // push adds one sample: an object of values by series key.
  push(sample) {
    for (const s of this.series) {
      s.values.push(Number(sample[s.key]) || 0);
      if (s.values.length > this.points) s.values.shift();
    }
    this.draw();
  }

  draw() {
    const W = 400, H = 120, top = 8, bottom = 112;
    const maxV = Math.max(1, ...this.series.flatMap((s) => s.values));
    this.svg.replaceChildren();
    for (let i = 0; i <= 2; i++) {
      const y = top + ((bottom - top) * i) / 2;
      this.svg.append(svg('line', { x1: 0, x2: W, y1: y, y2: y, class: 'grid' }));
    }
    const label = svg('text', { x: 4, y: top + 10, class: 'axis' });
    label.textContent = this.format(maxV);
    this.svg.append(label);
    // Until the window is full the samples so far span the width.
    const span = Math.max(2, ...this.series.map((s) => s.values.length));
    for (const s of this.series) {
      if (s.values.length === 0) continue;
      const step = W / (span - 1);
      const off = span - s.values.length;
      const pts = s.values.map((v, i) => `${((off + i) * step).toFixed(1)},${(bottom - ((bottom - top) * v) / maxV).toFixed(1)}`);
      if (pts.length === 1) pts.unshift(pts[0].replace(/^[^,]+/, '0'));
      this.svg.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: s.color, 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' }));
    }
    this.legend.replaceChildren(...this.series.map((s) => {
      const li = document.createElement('li');
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = s.color;
      const last = s.values.length ? s.values[s.values.length - 1] : null;
      li.append(sw, `${s.label} `);
      const b = document.createElement('b');
      b.dataset.series = s.key;
      b.textContent = last === null ? '–' : this.format(last);
      li.append(b);
      return li;
    }));
  }
}
