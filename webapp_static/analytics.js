/* The analytics page: a date range, then every figure of one report, drawn with charts.js. */
"use strict";

FD.start(async (me) => {
  if (!FD.isStaff(me)) { location.replace("/app/"); return; }
  const form = document.getElementById("period");
  const colors = () => {
    const style = getComputedStyle(document.documentElement);
    return { telegram: style.getPropertyValue("--button").trim() || "#2481cc", widget: "#f0a020",
             ai: "#2ea043", people: "#8e6cd8", tokens: style.getPropertyValue("--hint").trim() || "#999",
             cost: "#e5534b" };
  };
  const isoDay = (date) => date.toISOString().slice(0, 10);
  const shortDay = (iso) => new Date(iso + "T00:00:00").toLocaleDateString(document.documentElement.lang,
    { day: "numeric", month: "short" });
  const duration = (seconds) => seconds === null ? "—" : seconds < 90 ? `${Math.round(seconds)} ${FD.t("seconds_short")}`
    : seconds < 5400 ? `${Math.round(seconds / 60)} ${FD.t("minutes_short")}` : `${(seconds / 3600).toFixed(1)} ${FD.t("hours_short")}`;
  const percent = (share) => share === null ? "—" : `${Math.round(share * 100)}%`;

  function preset(days) {
    const end = new Date();
    const start = new Date(end.getTime() - (days - 1) * 86400000);
    form.elements.start.value = isoDay(start);
    form.elements.end.value = isoDay(end);
  }

  function show(id, text) { document.getElementById(id).textContent = text; }

  async function load() {
    const query = new URLSearchParams({ start: form.elements.start.value, end: form.elements.end.value });
    FD.status(FD.t("loading"));
    let report;
    try {
      report = await FD.api("GET", "/api/analytics?" + query);
    } catch (error) {
      FD.status(error.message);
      return;
    }
    FD.status("");
    const c = colors();
    const labels = report.days.map(shortDay);
    const o = report.outcomes;
    show("stat-total", String(o.total));
    show("stat-ai", percent(o.ai_resolved_share));
    show("stat-response", duration(report.first_response.median_seconds));
    show("stat-p90", FD.t("p90", { value: duration(report.first_response.p90_seconds) }));
    show("stat-rating", report.ratings.average === null ? "—" : `${report.ratings.average.toFixed(1)} ★`);
    show("stat-ratings", FD.t("ratings_count", { count: report.ratings.count }));
    show("stat-cost", `$${report.ai_usage.total.cost.toFixed(2)}`);
    show("stat-tokens", FD.t("tokens_count", { count: (report.ai_usage.total.tokens_in + report.ai_usage.total.tokens_out).toLocaleString() }));

    FDCharts.bars(document.getElementById("per-day"), { labels, label: FD.t("per_day_chart"), series: [
      { name: FD.t("channel_telegram"), values: report.conversations_per_day.telegram || [], color: c.telegram },
      { name: FD.t("channel_widget"), values: report.conversations_per_day.widget || [], color: c.widget }] });
    FDCharts.shares(document.getElementById("outcomes"), { label: FD.t("outcomes_chart"), parts: [
      { name: FD.t("state_ai"), value: o.ai_resolved, color: c.ai },
      { name: FD.t("handed_off"), value: o.handed_off, color: c.people }] });
    FDCharts.bars(document.getElementById("ratings"), { labels: ["1★", "2★", "3★", "4★", "5★"], label: FD.t("ratings_chart"),
      series: [{ name: FD.t("conversations"), values: report.ratings.distribution, color: "#f0b400" }] });
    FDCharts.bars(document.getElementById("tokens"), { labels, label: FD.t("tokens_chart"), series: [
      { name: FD.t("tokens_in"), values: report.ai_usage.tokens_in, color: c.telegram },
      { name: FD.t("tokens_out"), values: report.ai_usage.tokens_out, color: c.ai }],
      format: (v) => v >= 1000 ? `${Math.round(v / 100) / 10}k` : String(Math.round(v)) });
    FDCharts.line(document.getElementById("cost"), { labels, values: report.ai_usage.cost, color: c.cost,
      label: FD.t("cost_chart"), format: (v) => `$${Number(v).toFixed(2)}` });

    const questions = document.getElementById("questions");
    questions.replaceChildren(...report.top_questions.map((q) =>
      FD.el("li", {}, FD.el("span", {}, q.text), " ", FD.el("span", { class: "badge" }, String(q.count)))));
    if (!report.top_questions.length) questions.replaceChildren(FD.el("li", { class: "muted" }, FD.t("empty_inbox")));
    const rows = document.querySelector("#managers tbody");
    rows.replaceChildren(...report.managers.map((m) => FD.el("tr", {}, FD.el("td", {}, m.name),
      FD.el("td", {}, String(m.taken)), FD.el("td", {}, String(m.replies)), FD.el("td", {}, String(m.closed)))));
    for (const id of ["stats", "per-day-card", "outcomes-card", "ratings-card", "cost-card", "questions-card", "managers-card"]) {
      document.getElementById(id).hidden = false;
    }
  }

  form.addEventListener("change", (event) => {
    if (event.target.name === "preset") preset(Number(event.target.value));
    else for (const radio of form.elements.preset) radio.checked = false;
    load();
  });
  preset(30);
  await load();
});
