/* The analytics page's charts, drawn by Chart.js (webapp_static/vendor/, re-vendored from npm by
   vendor/revendor.sh): stacked bars, a line and a share bar, in Telegram's theme colours.

   Chart.js rather than our own SVG: it does the axes (whole-number ticks, every one labelled), tooltips
   that also work by touch, and redrawing when the window or the Telegram view changes size; ours drew
   fractional ticks rounded to the wrong numbers and scaled its text down on a phone. Each chart is a
   <canvas role="img"> whose label says what it shows; the figures themselves are also in the CSV export. */
"use strict";

const FDCharts = (() => {
  const drawn = new Map();  // container -> its Chart, destroyed before the container is drawn again

  function theme() {
    const style = getComputedStyle(document.documentElement);
    const value = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
    return { text: value("--hint", "#6d6d72"), grid: value("--separator", "rgba(127, 127, 127, .22)"),
             font: getComputedStyle(document.body).fontFamily };
  }

  function canvasIn(container, label, height) {
    if (drawn.has(container)) drawn.get(container).destroy();
    const canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", label);
    canvas.textContent = label;
    const box = document.createElement("div");
    box.className = "chart-box";
    box.style.height = height + "px";
    box.append(canvas);
    container.replaceChildren(box);
    return canvas;
  }

  function draw(container, label, height, config) {
    const colors = theme();
    Chart.defaults.color = colors.text;
    Chart.defaults.font.family = colors.font;
    Chart.defaults.borderColor = colors.grid;
    const chart = new Chart(canvasIn(container, label, height), {
      ...config,
      options: { responsive: true, maintainAspectRatio: false, animation: false,
                 interaction: { mode: "index", intersect: false }, ...config.options },
    });
    drawn.set(container, chart);
    return chart;
  }

  /* A count axis: whole numbers only, every step labelled, at least 0…4 so one or two look small. */
  function countAxis(format) {
    return { stacked: true, beginAtZero: true, suggestedMax: 4, grace: 0,
             ticks: { precision: 0, autoSkip: false, callback: (value) => format(value) } };
  }

  function dayAxis() {
    return { stacked: true, grid: { display: false }, ticks: { autoSkip: true, maxRotation: 0, autoSkipPadding: 8 } };
  }

  function legend(show) {
    return { display: show, position: "bottom", labels: { boxWidth: 10, boxHeight: 10, useBorderRadius: true,
                                                           borderRadius: 3 } };
  }

  /* Stacked bars: one bar per label, one segment per series. */
  function bars(container, { labels, series, label, format = (v) => Math.round(v).toLocaleString(document.documentElement.lang) }) {
    return draw(container, label, 230, {
      type: "bar",
      data: { labels, datasets: series.map((s) => ({ label: s.name, data: s.values, backgroundColor: s.color,
                                                     borderRadius: 3, maxBarThickness: 36 })) },
      options: { scales: { x: dayAxis(), y: countAxis(format) },
                 plugins: { legend: legend(series.length > 1),
                            tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${format(item.raw)}` } } } },
    });
  }

  /* A line over the labels (money: its own ticks, from zero). */
  function line(container, { labels, values, label, color, format = (v) => String(v) }) {
    return draw(container, label, 200, {
      type: "line",
      data: { labels, datasets: [{ label, data: values, borderColor: color, backgroundColor: color, borderWidth: 2.5,
                                   pointRadius: values.length > 45 ? 0 : 3, tension: 0 }] },
      options: { scales: { x: { ...dayAxis(), stacked: false },
                           y: { beginAtZero: true, ticks: { autoSkip: false, maxTicksLimit: 6, callback: format } } },
                 plugins: { legend: legend(false),
                            tooltip: { callbacks: { label: (item) => format(item.raw) } } } },
    });
  }

  /* One horizontal bar split into shares, with each part's share in the legend. */
  function shares(container, { parts, label }) {
    const total = parts.reduce((sum, p) => sum + p.value, 0);
    const percent = (value) => total ? Math.round((100 * value) / total) : 0;
    return draw(container, label, 96, {
      type: "bar",
      data: { labels: [label], datasets: parts.map((p) => ({ label: `${p.name} · ${percent(p.value)}%`, data: [p.value],
                                                            backgroundColor: p.color, borderRadius: 4 })) },
      options: { indexAxis: "y", interaction: { mode: "nearest", intersect: true },
                 scales: { x: { stacked: true, display: false, max: total || 1 }, y: { stacked: true, display: false } },
                 plugins: { legend: legend(true),
                            tooltip: { callbacks: { title: () => "", label: (item) => `${item.dataset.label} (${item.raw})` } } } },
    });
  }

  return { bars, line, shares };
})();
