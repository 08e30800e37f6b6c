/* The analytics page: a date range, every figure of one report drawn with charts.js, each headline
   figure against the period of the same length before, and the daily figures as a CSV file. */
"use strict";

FD.start(async (me) => {
  if (!FD.isStaff(me)) { location.replace("/app/"); return; }
  const form = document.getElementById("period");
  const lang = document.documentElement.lang || "en";
  const colors = () => {
    const style = getComputedStyle(document.documentElement);
    return { telegram: style.getPropertyValue("--button").trim() || "#2481cc", widget: "#f0a020",
             ai: "#2ea043", people: "#8e6cd8", cost: "#e5534b" };
  };
  const isoDay = (date) => date.toISOString().slice(0, 10);
  const duration = (seconds) => seconds === null ? "—" : seconds < 90 ? `${Math.round(seconds)} ${FD.t("seconds_short")}`
    : seconds < 5400 ? `${Math.round(seconds / 60)} ${FD.t("minutes_short")}` : `${(seconds / 3600).toFixed(1)} ${FD.t("hours_short")}`;
  const percent = (share) => share === null ? "—" : `${Math.round(share * 100)}%`;
  const money = (value) => `$${Number(value).toFixed(2)}`;
  const count = (value) => Math.round(value).toLocaleString(lang);

  function preset(days) {
    const end = new Date();
    const start = new Date(end.getTime() - (days - 1) * 86400000);
    form.elements.start.value = isoDay(start);
    form.elements.end.value = isoDay(end);
  }

  function show(id, text) { document.getElementById(id).textContent = text; }

  /* "▲ 50% · before: 2": how a figure moved since the period before. `better` says which way is good. */
  function delta(id, now, before, text, better = "up") {
    const node = document.getElementById(id);
    if (now === null || before === null) {
      node.textContent = before === null ? "" : FD.t("compare_before", { value: text(before) });
      node.className = "delta";
      return;
    }
    const change = before ? Math.round(((now - before) / Math.abs(before)) * 100) : null;
    const way = now > before ? "up" : now < before ? "down" : "same";
    const arrow = { up: "▲", down: "▼", same: "=" }[way];
    const moved = change === null || way === "same" ? arrow : `${arrow} ${Math.abs(change)}%`;
    node.textContent = `${moved} · ${FD.t("compare_before", { value: text(before) })}`;
    node.className = "delta " + (way === "same" ? "" : way === better ? "good" : "bad");
  }

  function query() {
    return new URLSearchParams({ start: form.elements.start.value, end: form.elements.end.value });
  }

  async function load() {
    FD.status(FD.t("loading"));
    let report;
    try {
      report = await FD.api("GET", "/api/analytics?" + query());
    } catch (error) {
      FD.status(error.message);
      return;
    }
    FD.status("");
    const c = colors();
    const labels = report.day_labels;
    const o = report.outcomes;
    const before = report.previous;
    const usage = report.ai_usage.total;
    show("compared", FD.t("compared_with", { period: before.label }));
    document.getElementById("compared").hidden = false;
    show("stat-total", count(o.total));
    delta("delta-total", o.total, before.conversations, count);
    show("stat-ai", percent(o.ai_resolved_share));
    delta("delta-ai", o.ai_resolved_share, before.ai_resolved_share, percent);
    show("stat-response", duration(report.first_response.median_seconds));
    show("stat-p90", FD.t("p90", { value: duration(report.first_response.p90_seconds) }));
    delta("delta-response", report.first_response.median_seconds, before.first_response_median_seconds, duration,
          "down");
    show("stat-rating", report.ratings.average === null ? "—" : `${report.ratings.average.toFixed(1)} ★`);
    show("stat-ratings", FD.plural("ratings_count", report.ratings.count));
    delta("delta-rating", report.ratings.average, before.ratings_average, (v) => `${v.toFixed(1)} ★`);
    show("stat-cost", money(usage.cost));
    show("stat-tokens", FD.plural("tokens_count", usage.tokens_in + usage.tokens_out));
    // Customers' voice heard and images seen (their cost is in the AI cost above).
    show("stat-media", FD.t("media_usage", { voice: count(usage.transcriptions),
                                             minutes: count(Math.ceil(usage.audio_seconds / 60)),
                                             images: count(usage.images) }));
    document.getElementById("stat-media").hidden = !(usage.transcriptions || usage.images);
    delta("delta-cost", usage.cost, before.cost, money, "down");

    FDCharts.bars(document.getElementById("per-day"), { labels, label: FD.t("per_day_chart"), series: [
      { name: FD.t("channel_telegram"), values: report.conversations_per_day.telegram || [], color: c.telegram },
      { name: FD.t("channel_widget"), values: report.conversations_per_day.widget || [], color: c.widget }] });
    FDCharts.shares(document.getElementById("outcomes"), { label: FD.t("outcomes_chart"), parts: [
      { name: FD.t("state_ai"), value: o.ai_resolved, color: c.ai },
      { name: FD.t("handed_off"), value: o.handed_off, color: c.people }] });
    FDCharts.bars(document.getElementById("ratings"), { labels: ["1★", "2★", "3★", "4★", "5★"], label: FD.t("ratings_chart"),
      series: [{ name: FD.t("conversations"), values: report.ratings.distribution, color: "#f0b400" }] });
    if (report.ai_enabled) {
      FDCharts.bars(document.getElementById("tokens"), { labels, label: FD.t("tokens_chart"), series: [
        { name: FD.t("tokens_in"), values: report.ai_usage.tokens_in, color: c.telegram },
        { name: FD.t("tokens_out"), values: report.ai_usage.tokens_out, color: c.ai }],
        format: (v) => v >= 1000 ? `${Math.round(v / 100) / 10}k` : String(Math.round(v)) });
      FDCharts.line(document.getElementById("cost"), { labels, values: report.ai_usage.cost, color: c.cost,
        label: FD.t("cost_chart"), format: money });
    }

    const questions = document.getElementById("questions");
    questions.replaceChildren(...report.top_questions.map((q) =>
      FD.el("li", {}, FD.el("span", {}, q.text), " ",
        FD.el("span", { class: "badge", title: FD.plural("conversations_count", q.count) }, count(q.count)))));
    if (!report.top_questions.length) questions.replaceChildren(FD.el("li", { class: "muted" }, FD.t("empty_inbox")));
    const rows = document.querySelector("#managers tbody");
    rows.replaceChildren(...report.managers.map((m) => FD.el("tr", {}, FD.el("td", {}, m.name),
      FD.el("td", {}, String(m.taken)), FD.el("td", {}, String(m.replies)), FD.el("td", {}, String(m.closed)))));
    for (const id of ["stats", "per-day-card", "outcomes-card", "ratings-card", "questions-card", "managers-card"]) {
      document.getElementById(id).hidden = false;
    }
    // Without an AI there are no tokens or costs to show: the cards would only ever read zero.
    document.getElementById("cost-card").hidden = !report.ai_enabled;
    document.getElementById("stat-cost-card").hidden = !report.ai_enabled;
  }

  /* The CSV comes through the API (inside Telegram the sign-in is a header a plain link cannot carry). */
  async function download(button) {
    button.disabled = true;
    try {
      const response = await fetch("/api/analytics/export.csv?" + query(), { headers: FD.headers("GET"),
                                                                              credentials: "same-origin" });
      if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error?.message || response.statusText);
      const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
      const link = FD.el("a", { href: URL.createObjectURL(await response.blob()),
                                download: name ? name[1] : "analytics.csv" });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    } catch (error) {
      FD.toast(error.message);
    } finally {
      button.disabled = false;
    }
  }

  form.addEventListener("change", (event) => {
    if (event.target.name === "preset") preset(Number(event.target.value));
    else for (const radio of form.elements.preset) radio.checked = false;
    load();
  });
  document.getElementById("export-csv").addEventListener("click", (event) => download(event.currentTarget));
  preset(30);
  await load();
});
