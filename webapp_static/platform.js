/* The platform page (PLATFORM_ADMIN_IDS only): every bot with its state, traffic, AI cost and errors; add one by
   its token, pause, resume, give one a new token. A page of bots at a time, searched on the server; each change
   answers with the bot's row as stored, which replaces the one shown. */
"use strict";

FD.start(async (me) => {
  const strings = JSON.parse(document.getElementById("fd-platform-strings").textContent);
  const pt = (key, params) => {
    let text = strings[key] || key;
    for (const [name, value] of Object.entries(params || {})) text = text.split("{" + name + "}").join(value);
    return text;
  };
  const el = FD.el;
  const body = document.querySelector("#bots tbody");
  const more = document.getElementById("more");
  const search = document.getElementById("search");
  const headings = [...document.querySelectorAll("#bots thead th")].map((th) => th.textContent.trim());
  const number = (n) => n.toLocaleString(document.documentElement.lang || "en");
  let shown = 0, total = 0, next = null, query = "";

  const nameOf = (bot) => bot.username ? "@" + bot.username : String(bot.telegram_id);

  function stateCell(bot) {
    const badge = el("span", { class: "badge bot-" + bot.state }, pt("state_" + bot.state));
    const reason = bot.paused_reason ? el("div", { class: "small muted" }, pt("reason_" + bot.paused_reason)) : null;
    return [badge, reason];
  }

  function traffic(period) {
    return pt("traffic", { in: number(period.messages_in), out: number(period.answers_out) });
  }

  function cost(bot) {
    return bot.ai_budget === null ? pt("cost", { cost: bot.ai_cost })
      : pt("cost_of_budget", { cost: bot.ai_cost, budget: bot.ai_budget });
  }

  function errors(bot) {
    const found = [];
    if (bot.paused_reason === "revoked") found.push(el("div", { class: "danger-text" }, pt("revoked")));
    if (bot.failed_jobs) found.push(el("div", { class: "danger-text" }, pt("failed_jobs", { count: number(bot.failed_jobs) })));
    return found.length ? found : [el("span", { class: "muted" }, pt("no_errors"))];
  }

  function actions(bot) {
    const buttons = [];
    if (bot.state === "active") buttons.push(el("button", { type: "button", class: "secondary", "data-action": "pause" }, pt("pause")));
    if (bot.state === "paused" && bot.paused_reason !== "revoked") {
      buttons.push(el("button", { type: "button", "data-action": "resume" }, pt("resume")));
    }
    if (bot.state !== "removed" && !bot.token_from_settings) {  // BOT_TOKEN's is changed in the server's settings
      buttons.push(el("button", { type: "button", class: bot.paused_reason === "revoked" ? "" : "link", "data-action": "token" },
        pt("new_token")));
    }
    return buttons;
  }

  function cell(index, ...children) {
    return el("td", { "data-label": headings[index], class: index >= 2 && index <= 4 ? "figure" : null },
      el("div", {}, ...children));
  }

  function row(bot) {
    const token = bot.token_from_settings ? pt("token_settings") : bot.token_last4 ? pt("token_last4", { last4: bot.token_last4 }) : "";
    const troubled = bot.paused_reason === "revoked" || bot.failed_jobs > 0;
    const tr = el("tr", { "data-id": bot.id, class: [troubled ? "troubled" : "", "bot-" + bot.state].join(" ").trim() },
      el("th", { scope: "row", class: "bot-name" }, el("span", { class: "name" }, nameOf(bot)),
        el("div", { class: "small muted" }, "id " + bot.id + " · " + bot.telegram_id + (token ? " · " + token : "")),
        el("div", { class: "small muted" }, pt("added_on", { when: FD.when(bot.created_at) }))),
      cell(1, ...stateCell(bot)), cell(2, traffic(bot.day)), cell(3, traffic(bot.month)), cell(4, cost(bot)),
      cell(5, ...errors(bot)), el("td", { class: "bot-actions" }, ...actions(bot)));
    tr.bot = bot;
    return tr;
  }

  function showCount() {
    document.getElementById("shown").textContent = pt("shown", { shown: number(shown), total: number(total) });
    document.getElementById("no-bots").hidden = total > 0;
    more.hidden = next === null;
  }

  async function load(reset) {
    const params = new URLSearchParams({ limit: "50" });
    if (query) params.set("q", query);
    if (!reset && next !== null) params.set("after", String(next));
    const page = await FD.api("GET", "/api/platform/bots?" + params);
    if (reset) { body.replaceChildren(); shown = 0; }
    for (const bot of page.bots) body.append(row(bot));
    shown += page.bots.length;
    total = page.total;
    next = page.next_after;
    showCount();
  }

  function replace(bot) {
    const old = body.querySelector(`tr[data-id="${bot.id}"]`);
    if (old) old.replaceWith(row(bot));
    else { body.prepend(row(bot)); shown += 1; total += 1; showCount(); }
  }

  function fieldError(id, field, text) {
    const box = document.getElementById(id);
    box.textContent = text || "";
    box.hidden = !text;
    field.setAttribute("aria-invalid", text ? "true" : "false");
  }

  try {
    await load(true);
  } catch (error) {
    FD.status(error.message);  // not a platform owner: "Not found."
    return;
  }
  document.getElementById("platform").hidden = false;

  const addForm = document.getElementById("add-form");
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = addForm.elements.token;
    const button = addForm.querySelector("button[type=submit]");
    button.disabled = true;
    fieldError("add-error", field, "");
    try {
      const bot = await FD.api("POST", "/api/platform/bots", { token: field.value.trim() });
      field.value = "";
      replace(bot);
      FD.toast(pt("added", { name: nameOf(bot) }));
    } catch (error) {
      fieldError("add-error", field, error.message);
    } finally {
      button.disabled = false;
    }
  });

  let searching = null;
  search.addEventListener("input", () => {
    clearTimeout(searching);
    searching = setTimeout(async () => {
      query = search.value.trim();
      try { await load(true); } catch (error) { FD.toast(error.message); }
    }, 250);
  });
  more.addEventListener("click", async () => {
    more.disabled = true;
    try { await load(false); } catch (error) { FD.toast(error.message); } finally { more.disabled = false; }
  });

  const sheet = document.getElementById("token-sheet");
  const tokenForm = document.getElementById("token-form");
  let tokenFor = null;
  document.getElementById("token-cancel").addEventListener("click", () => sheet.close());
  tokenForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = tokenForm.elements.token;
    fieldError("token-error", field, "");
    try {
      const bot = await FD.api("PUT", `/api/platform/bots/${tokenFor.id}/token`, { token: field.value.trim() });
      replace(bot);
      sheet.close();
      FD.toast(pt("token_saved", { name: nameOf(bot) }));
    } catch (error) {
      fieldError("token-error", field, error.message);
    }
  });

  body.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const bot = button.closest("tr").bot;
    const action = button.dataset.action;
    if (action === "token") {
      tokenFor = bot;
      document.getElementById("token-title").textContent = pt("new_token_for", { name: nameOf(bot) });
      tokenForm.elements.token.value = "";
      fieldError("token-error", tokenForm.elements.token, "");
      sheet.showModal();
      return;
    }
    if (!(await FD.confirmed(pt("confirm_" + action, { name: nameOf(bot) })))) return;
    button.disabled = true;
    try {
      const changed = await FD.api("POST", `/api/platform/bots/${bot.id}/${action}`);
      replace(changed);
      FD.toast(pt(action === "pause" ? "paused" : "resumed", { name: nameOf(changed) }));
    } catch (error) {
      FD.toast(error.message);
      button.disabled = false;
    }
  });
});
