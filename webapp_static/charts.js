/* Small SVG charts for the analytics page: stacked bars, a line, and a share bar.
   Our own (about 150 lines) rather than a vendored library: the page needs three simple shapes that
   follow Telegram's theme colours, and no chart library is available here without a CDN. Each chart
   is an <svg role="img"> with a text summary for screen readers, and tooltips as <title>s. */
"use strict";

const FDCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const WIDTH = 600;
  const HEIGHT = 220;
  const PAD = { left: 44, right: 10, top: 12, bottom: 28 };

  function svg(tag, attributes, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    for (const child of children) node.append(child);
    return node;
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function frame(label) {
    return svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img", "aria-label": label });
  }

  function axes(chart, max, labels, format) {
    const plotHeight = HEIGHT - PAD.top - PAD.bottom;
    for (let i = 0; i <= 4; i++) {
      const y = PAD.top + plotHeight - (plotHeight * i) / 4;
      chart.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid-line" }));
      const text = svg("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end", class: "axis" });
      text.textContent = format((max * i) / 4);
      chart.append(text);
    }
    const every = Math.max(1, Math.ceil(labels.length / 8));
    const step = (WIDTH - PAD.left - PAD.right) / labels.length;
    labels.forEach((label, index) => {
      if (index % every !== 0) return;
      const text = svg("text", { x: PAD.left + step * (index + 0.5), y: HEIGHT - 8, "text-anchor": "middle", class: "axis" });
      text.textContent = label;
      chart.append(text);
    });
  }

  /* Stacked bars: one bar per label, one segment per series. */
  function bars(container, { labels, series, label, format = (v) => String(Math.round(v)) }) {
    const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
    const max = niceMax(Math.max(4, ...totals));  // whole-number ticks for small counts
    const chart = frame(label);
    axes(chart, max, labels, format);
    const plotHeight = HEIGHT - PAD.top - PAD.bottom;
    const step = (WIDTH - PAD.left - PAD.right) / labels.length;
    const width = Math.max(2, step * 0.7);
    labels.forEach((day, i) => {
      let base = PAD.top + plotHeight;
      for (const s of series) {
        const value = s.values[i] || 0;
        if (!value) continue;
        const height = (plotHeight * value) / max;
        base -= height;
        const rect = svg("rect", { x: PAD.left + step * i + (step - width) / 2, y: base, width, height,
                                   fill: s.color, class: "bar", "data-series": s.name });
        rect.append(svg("title", {}, `${day} · ${s.name}: ${format(value)}`));
        chart.append(rect);
      }
    });
    container.replaceChildren(chart, legend(series));
  }

  /* A line over the labels. */
  function line(container, { labels, values, label, color, format = (v) => String(v) }) {
    const max = niceMax(Math.max(0, ...values));
    const chart = frame(label);
    axes(chart, max, labels, format);
    const plotHeight = HEIGHT - PAD.top - PAD.bottom;
    const step = (WIDTH - PAD.left - PAD.right) / labels.length;
    const points = values.map((value, i) => [PAD.left + step * (i + 0.5), PAD.top + plotHeight - (plotHeight * value) / max]);
    chart.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none", stroke: color,
                                   "stroke-width": 2.5, class: "line" }));
    points.forEach(([x, y], i) => {
      const dot = svg("circle", { cx: x, cy: y, r: 3, fill: color, class: "dot" });
      dot.append(svg("title", {}, `${labels[i]}: ${format(values[i])}`));
      chart.append(dot);
    });
    container.replaceChildren(chart);
  }

  /* One horizontal bar split into shares. */
  function shares(container, { parts, label }) {
    const total = parts.reduce((sum, p) => sum + p.value, 0) || 1;
    const chart = svg("svg", { viewBox: "0 0 600 36", class: "chart", role: "img", "aria-label": label });
    let x = 0;
    for (const part of parts) {
      const width = (600 * part.value) / total;
      if (width <= 0) continue;
      const rect = svg("rect", { x, y: 4, width, height: 28, fill: part.color, class: "bar", "data-series": part.name, rx: 4 });
      rect.append(svg("title", {}, `${part.name}: ${part.value} (${Math.round((100 * part.value) / total)}%)`));
      chart.append(rect);
      x += width;
    }
    container.replaceChildren(chart, legend(parts.map((p) => ({ name: `${p.name} · ${Math.round((100 * p.value) / total)}%`, color: p.color }))));
  }

  function legend(series) {
    const list = document.createElement("ul");
    list.className = "legend";
    for (const s of series) {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = s.color;
      item.append(swatch, s.name);
      list.append(item);
    }
    return list;
  }

  return { bars, line, shares };
})();
