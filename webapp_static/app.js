/* The Mini App's common script: who is signed in, the API, live updates, and small helpers.
   Inside Telegram every call carries the signed initData; in a browser, the session cookie plus
   the CSRF token from /api/me. Every call names the bot (business) the page is for, in
   X-Frontdesk-Bot: the `?bot=` the app was opened with. Pages call FD.start(render) and get the
   caller once it is known. */
"use strict";

const FD = (() => {
  const tg = window.Telegram && window.Telegram.WebApp ? window.Telegram.WebApp : null;
  const initData = tg && tg.initData ? tg.initData : "";
  const strings = JSON.parse(document.getElementById("fd-strings").textContent);
  const bot = pageBot();
  let csrf = null;
  let me = null;

  /* The bot this page is for: the URL's `?bot=`, kept for the next pages of this visit. Inside Telegram
     a launch without one is the deployment's default bot; in a browser the session's bot is the one. */
  function pageBot() {
    const named = new URLSearchParams(location.search).get("bot");
    try {
      if (named && /^\d+$/.test(named)) { sessionStorage.setItem("fd-bot", named); return named; }
      return initData ? sessionStorage.getItem("fd-bot") || "" : "";
    } catch (error) {  // storage refused (a private window): this page's own `?bot=` only
      return named && /^\d+$/.test(named) ? named : "";
    }
  }

  function fill(text, params) {
    for (const [name, value] of Object.entries(params || {})) text = text.split("{" + name + "}").join(value);
    return text;
  }

  function t(key, params) {
    const text = strings[key];  // a word with a count is an object of forms: FD.plural picks one; t takes "other"
    return fill(typeof text === "string" ? text : (text && text.other) || key, params);
  }

  /* A word with a count in the form the page's language wants ("1 rating", "2 оценки", "5 оценок"). */
  const pluralRules = new Intl.PluralRules(document.documentElement.lang || "en");
  function plural(key, count, params) {
    const forms = strings[key] || {};
    const form = forms[pluralRules.select(count)] || forms.other || key;
    return fill(form, { count: count.toLocaleString(document.documentElement.lang || "en"), ...params });
  }

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message); this.status = status; this.code = code; this.details = details;
    }
  }

  /* What every call to the API carries: the signed initData inside Telegram, the CSRF token on changes. */
  function headers(method, json) {
    const result = {};
    if (initData) result["Authorization"] = "tma " + initData;
    if (bot) result["X-Frontdesk-Bot"] = bot;
    if (csrf && method !== "GET") result["X-CSRF-Token"] = csrf;
    if (json) result["Content-Type"] = "application/json";
    return result;
  }

  async function failure(response) {
    const data = await response.json().catch(() => ({}));
    const problem = data.error || {};
    return new ApiError(response.status, problem.code || "error", problem.message || response.statusText,
                        problem.details);
  }

  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(path, { method, headers: headers(method, body !== undefined), credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new ApiError(0, "network", t("offline"));
    }
    if (!response.ok) throw await failure(response);
    return response.json().catch(() => ({}));
  }

  /* POST a JSON body and read the NDJSON answer as it arrives: onLine(object) for every line.
     A refusal before the stream starts is an ordinary JSON error, thrown as ApiError; a dropped
     connection mid-stream throws ApiError(0, "network"). */
  async function stream(path, body, onLine) {
    let response;
    try {
      response = await fetch(path, { method: "POST", headers: headers("POST", true), credentials: "same-origin",
        body: JSON.stringify(body) });
    } catch (error) {
      throw new ApiError(0, "network", t("offline"));
    }
    if (!response.ok) throw await failure(response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        throw new ApiError(0, "network", t("offline"));
      }
      buffer += decoder.decode(chunk.value || new Uint8Array(), { stream: !chunk.done });
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).trim();
        buffer = buffer.slice(end + 1);
        if (line) onLine(JSON.parse(line));
      }
      if (chunk.done) break;
    }
    if (buffer.trim()) onLine(JSON.parse(buffer));
  }

  function status(text) { document.getElementById("status").textContent = text || ""; }

  let toastTimer = null;
  function toast(text) {
    const box = document.getElementById("toast");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 3500);
  }

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "html") node.innerHTML = value;  // only for HTML the server made safe
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const locale = document.documentElement.lang || "en";
  function when(iso) {
    const date = new Date(iso);
    const today = new Date();
    const sameDay = date.toDateString() === today.toDateString();
    return sameDay ? date.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" })
      : date.toLocaleDateString(locale, { day: "numeric", month: "short" }) + " "
        + date.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
  }

  function stateLabel(conversation) {
    if (conversation.state === "assigned") {
      const name = conversation.assignee ? conversation.assignee.name : conversation.assignee_name;
      return name ? t("state_assigned", { name }) : t("state_assigned_team");
    }
    return t("state_" + conversation.state);
  }

  function applyTheme() {
    if (!tg) return;
    document.documentElement.classList.add("tg");
    const params = tg.themeParams || {};
    for (const [key, value] of Object.entries(params)) {
      document.documentElement.style.setProperty("--tg-theme-" + key.replace(/_/g, "-"), value);
    }
  }

  /* Staff read the desk; viewers only read it, managers and admins act in it. */
  const isStaff = (caller) => ["viewer", "manager", "admin"].includes(caller.role);
  const canAct = (caller) => caller.role === "manager" || caller.role === "admin";

  function showNavigation(caller) {
    const staff = isStaff(caller);
    for (const link of document.querySelectorAll("[data-audience]")) {
      const audience = link.dataset.audience;
      link.hidden = !(audience === "everyone" || (audience === "customers" && !staff)
        || (audience === "staff" && staff) || (audience === "admins" && caller.role === "admin")
        || (audience === "studio" && (staff || caller.studio)) || (audience === "platform" && caller.platform));
    }
  }

  /* The page's language follows the caller's: remembered in a cookie so later pages render in it. */
  function followLanguage(caller) {
    document.cookie = "frontdesk_lang=" + caller.locale + "; path=/; max-age=31536000; samesite=lax";
    if (caller.locale !== locale && !sessionStorage.getItem("fd-lang-switched")) {
      sessionStorage.setItem("fd-lang-switched", "1");
      location.reload();
      return true;
    }
    return false;
  }

  /* The businesses this person works for, in the header: another one opens in its own bot's chat inside
     Telegram (each bot signs its own Mini App), or moves the browser's session there. */
  function showBots(caller) {
    const slot = document.getElementById("bot-switch");
    const bots = caller.bots || [];
    if (!slot || bots.length < 2) return;
    const select = el("select", { id: "bot-select", "aria-label": t("switch_business") });
    for (const choice of bots) select.append(el("option", { value: choice.id, selected: choice.current }, choice.name));
    select.addEventListener("change", async () => {
      const choice = bots.find((item) => String(item.id) === select.value);
      const current = bots.find((item) => item.current);
      if (!choice || choice.current) return;
      if (initData) {
        select.value = String(current.id);
        if (choice.link) tg.openTelegramLink(choice.link); else toast(t("switch_in_telegram"));
        return;
      }
      select.disabled = true;
      try {
        await api("POST", "/api/me/bot", { bot: choice.id });
        location.assign("/app/inbox?bot=" + choice.id);
      } catch (error) {
        select.disabled = false;
        select.value = String(current.id);
        toast(error.message);
      }
    });
    slot.append(el("label", { class: "bot-switch" }, el("span", { class: "visually-hidden" }, t("switch_business")),
                   select));
    slot.hidden = false;
  }

  async function start(render) {
    applyTheme();
    if (tg) { tg.ready(); tg.expand(); }
    try {
      me = await api("GET", "/api/me");
    } catch (error) {
      status(error.status === 401 ? t("not_signed_in") : error.message);
      return;
    }
    csrf = me.csrf_token;
    if (followLanguage(me)) return;
    showNavigation(me);
    showBots(me);
    status("");
    document.body.classList.toggle("read-only", me.role === "viewer");
    document.body.classList.toggle("customer-view", !isStaff(me));  // a customer's own messages on the right
    const banner = { pending: "pending_banner", viewer: "viewer_banner" }[me.role];
    if (banner) {
      const note = el("p", { class: "card muted role-banner" }, t(banner));
      document.querySelector("main").prepend(note);
    }
    try {
      await render(me);
    } catch (error) {
      status(error.message);
    }
  }

  /* Calls onChange(conversationId) whenever a conversation the caller may see changes. */
  function live(onChange, onReconnect) {
    let delay = 500;
    function connect() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      const socket = new WebSocket(scheme + location.host + "/api/live");
      socket.onopen = () => { if (initData) socket.send(JSON.stringify({ type: "auth", init_data: initData, bot: bot || null })); };
      socket.onmessage = (event) => {
        const data = JSON.parse(event.data);
        if (data.type === "ready") {
          delay = 500;
          document.body.classList.remove("offline");
          // Events may have been missed meanwhile: while offline, or (the first time) between the page's
          // first load and this subscription.
          if (onReconnect) onReconnect();
        } else if (data.type === "conversation") {
          onChange(data.id);
        } else if (data.type === "typing") {  // a teammate is writing: pages that show it listen for this
          document.dispatchEvent(new CustomEvent("fd-typing", { detail: data }));
        }
      };
      socket.onclose = (event) => {
        if (event.code === 4401) return;
        document.body.classList.add("offline");
        setTimeout(connect, delay + Math.random() * delay);
        delay = Math.min(delay * 2, 15000);
      };
    }
    connect();
  }

  function confirmed(text) {
    return new Promise((resolve) => {
      if (tg && tg.showConfirm && initData) tg.showConfirm(text, resolve);
      else resolve(window.confirm(text));
    });
  }

  /* One conversation in a list: who, its state, the last message. */
  function conversationRow(conversation, staff) {
    const title = staff ? conversation.customer.name
      : t("channel_" + conversation.channel) + " · " + when(conversation.created_at);
    const preview = conversation.preview ? conversation.preview.text : "";
    const badges = el("span", {}, el("span", { class: "badge " + conversation.state }, stateLabel(conversation)));
    if (staff && conversation.channel === "widget") badges.prepend(el("span", { class: "badge" }, t("channel_widget")), " ");
    return el("li", { "data-id": conversation.id, "data-state": conversation.state },
      el("a", { href: "/app/conversations/" + conversation.id },
        el("span", { class: "name" }, title), el("span", { class: "time" }, when(conversation.last_message_at)),
        el("span", { class: "preview" }, preview), badges));
  }

  return { api, stream, headers, bot, t, plural, el, when, status, toast, start, live, stateLabel, confirmed, tg, conversationRow,
           isStaff, canAct, get me() { return me; }, get csrf() { return csrf; }, ApiError };
})();

if (document.body.dataset.page === "login") document.getElementById("status").textContent = "";
