/* The staff inbox, built for triage: tabs with counts, filters, search over what was written, cursor
   paging, rows that move as things happen, unread marks, alerts for a new waiting conversation, and
   keyboard navigation (j/k, Enter, /, 1–6, ?).

   What this browser remembers, per staff member (localStorage, keyed by their id): which
   conversations they have read, and which alerts they want. Both are about this device (a phone in
   Telegram is not the desk's PC with its speakers, and a notification permission belongs to a
   browser), so nothing goes to the server and nothing needs a migration. */
"use strict";

FD.start(async (me) => {
  if (!FD.isStaff(me)) { location.replace("/app/"); return; }
  const form = document.getElementById("filters");
  const list = document.getElementById("conversations");
  const more = document.getElementById("more");
  const assignee = document.getElementById("assignee");
  const help = document.getElementById("help");
  const words = JSON.parse(document.getElementById("inbox-strings").textContent);
  const say = (key, params) => {
    let text = words[key] || FD.t(key);
    for (const [name, value] of Object.entries(params || {})) text = text.split("{" + name + "}").join(value);
    return text;
  };
  const baseTitle = document.title;
  const locale = document.documentElement.lang || "en";
  const opened = new Date();
  let cursor = null;
  let generation = 0;
  let selected = -1;
  const states = new Map();  // conversation id -> the state last seen, to tell a newly waiting one

  /* --- what this browser remembers ----------------------------------------------------------------- */

  function stored(key, fallback) {
    try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch (error) { return fallback; }
  }
  function store(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch (error) { /* private mode: not kept */ }
  }
  const readKey = `fd-inbox-read:${me.id}`;
  const alertsKey = `fd-inbox-alerts:${me.id}`;
  // Read marks: conversation id -> the time of the customer's message last seen. Before the first
  // visit everything counts as read, so a new desk does not open with a hundred unread marks.
  const reading = stored(readKey, null) || { since: opened.toISOString(), seen: {} };
  store(readKey, reading);
  const alerts = { notify: false, sound: true, title: true, ...stored(alertsKey, {}) };

  function unread(row) {
    if (!row.preview || row.preview.author !== "customer" || !row.preview.created_at) return false;
    const seen = reading.seen[row.id] || reading.since;
    return new Date(row.preview.created_at) > new Date(seen);
  }
  function markRead(row) {
    if (!row.preview || !row.preview.created_at) return;
    reading.seen[row.id] = row.preview.created_at;
    const ids = Object.keys(reading.seen);
    if (ids.length > 500) {  // keep the newest 500: older marks only matter until they scroll away
      ids.sort((a, b) => reading.seen[a].localeCompare(reading.seen[b]));
      for (const id of ids.slice(0, ids.length - 500)) delete reading.seen[id];
    }
    store(readKey, reading);
  }

  /* --- rows ---------------------------------------------------------------------------------------- */

  function nameOf(person) {
    if (!person) return "";
    return person.name || (person.visitor ? say("website_visitor") : "#" + person.id);
  }

  function duration(since) {
    const minutes = Math.max(0, Math.floor((Date.now() - new Date(since)) / 60000));
    const [value, unit] = minutes < 60 ? [Math.max(minutes, 1), "minute"]
      : minutes < 48 * 60 ? [Math.floor(minutes / 60), "hour"] : [Math.floor(minutes / 1440), "day"];
    return new Intl.NumberFormat(locale, { style: "unit", unit, unitDisplay: "short" }).format(value);
  }

  function row(conversation) {
    const fresh = unread(conversation);
    const badges = FD.el("span", { class: "badges" });
    if (conversation.channel === "widget") badges.append(FD.el("span", { class: "badge" }, FD.t("channel_widget")), " ");
    badges.append(FD.el("span", { class: "badge " + conversation.state }, FD.stateLabel(conversation)));
    const preview = conversation.preview;
    const said = preview ? (preview.author === "customer" ? "" : FD.t(preview.author === "ai" ? "assistant" : "team")
      + ": ") + preview.text : "";
    const reason = conversation.handoff_reason && conversation.state !== "ai"
      ? say("reason_" + conversation.handoff_reason) : "";
    const waiting = conversation.waiting_since
      ? FD.el("span", { class: "waited", title: FD.when(conversation.waiting_since),
                        "data-since": conversation.waiting_since },
        say("waiting_for", { time: duration(conversation.waiting_since) })) : null;
    const item = FD.el("li", { "data-id": conversation.id, "data-state": conversation.state,
                                class: fresh ? "unread" : null },
      FD.el("a", { href: "/app/conversations/" + conversation.id },
        FD.el("span", { class: "name" },
          fresh ? FD.el("span", { class: "dot", role: "img", "aria-label": say("unread"), title: say("unread") }) : null,
          nameOf(conversation.customer)),
        FD.el("span", { class: "time" }, waiting || FD.when(conversation.last_message_at)),
        FD.el("span", { class: "preview" }, said),
        badges,
        reason ? FD.el("span", { class: "reason" }, reason) : null));
    item.querySelector("a").addEventListener("click", () => markRead(conversation));
    states.set(conversation.id, conversation.state);
    return item;
  }

  /* --- the list, the tabs' counts, the team ----------------------------------------------------------- */

  function filters() {
    const data = new FormData(form);
    const query = new URLSearchParams({ view: data.get("view"), limit: "30" });
    for (const name of ["q", "channel", "assignee"]) if (data.get(name)) query.set(name, data.get(name));
    return query;
  }

  async function load(append) {
    const mine = ++generation;
    const query = filters();
    if (append && cursor) query.set("cursor", cursor);
    const page = await FD.api("GET", "/api/conversations?" + query);
    if (mine !== generation) return;  // a newer search started meanwhile
    const kept = selected >= 0 && list.children[selected] ? list.children[selected].dataset.id : null;
    if (!append) { list.replaceChildren(); selected = -1; }
    for (const conversation of page.conversations) list.append(row(conversation));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    FD.status(list.children.length ? "" : say(query.get("q") ? "empty_search" : "empty_inbox"));
    const again = [...list.children].findIndex((item) => item.dataset.id === kept);
    if (again >= 0) select(again, false);
    else if (selected < 0 && list.children.length && matchMedia("(hover: hover)").matches) select(0, false);
  }

  let waitingCount = 0;
  async function counts() {
    const query = new URLSearchParams();
    const data = new FormData(form);
    for (const name of ["channel", "assignee"]) if (data.get(name)) query.set(name, data.get(name));
    const summary = await FD.api("GET", "/api/inbox/summary?" + query);
    for (const [view, count] of Object.entries(summary.counts)) {
      const badge = form.querySelector(`[data-count="${view}"]`);
      if (badge) badge.textContent = count.toLocaleString(locale);
    }
    waitingCount = summary.counts.waiting;
    showTitle();
    if (assignee.options.length === 1) {
      for (const person of summary.staff) assignee.append(FD.el("option", { value: person.id }, nameOf(person)));
    }
  }
  let counting = null;
  let counted = 0;
  function recount() {  // at once, then at most every two seconds however busy the desk
    if (counting) return;
    const wait = Math.max(0, counted + 2000 - Date.now());
    counting = setTimeout(() => { counting = null; counted = Date.now(); counts().catch(() => {}); }, wait);
  }

  function showTitle() {
    document.title = alerts.title && waitingCount ? say("title_count", { count: waitingCount, title: baseTitle })
      : baseTitle;
  }

  /* A changed conversation: re-read it, alert if it just started waiting, and put it at the top if it
     still belongs to this view (the waiting view keeps its oldest-first order: a reload places it). */
  async function refresh(id) {
    let conversation;
    try {
      conversation = await FD.api("GET", "/api/conversations/" + id);
    } catch (error) {
      return;
    }
    const before = states.get(id);
    if (conversation.state === "waiting" && before !== "waiting"
        && (before !== undefined || new Date(conversation.waiting_since) >= opened)) alert(conversation);
    states.set(id, conversation.state);
    recount();
    const query = filters();
    const view = query.get("view");
    if (view === "waiting" || query.get("q")) { load(false).catch(() => {}); return; }
    const old = list.querySelector(`li[data-id="${id}"]`);
    const wasSelected = old && old.classList.contains("selected");
    if (old) old.remove();
    const channel = query.get("channel");
    const owner = query.get("assignee");
    const has = (who) => conversation.assignee && conversation.assignee.id === who;
    const fits = (view === "all" || conversation.state === view
      || (view === "mine" && conversation.state === "assigned" && has(me.id))
      || (view === "unassigned" && !conversation.assignee && conversation.state !== "closed"))
      && (view !== "mine" || (conversation.state === "assigned" && has(me.id)))
      && (!channel || conversation.channel === channel) && (!owner || has(Number(owner)));
    if (fits) {
      const item = row(conversation);
      item.classList.add("fresh");
      list.prepend(item);
      FD.status("");
    }
    const items = [...list.children];
    const at = items.findIndex((item) => item.classList.contains("selected"));
    if (wasSelected && fits) select(0, false);
    else selected = at;
  }

  /* --- alerts ---------------------------------------------------------------------------------------- */

  function alert(conversation) {
    if (alerts.sound) beep();
    if (alerts.notify && "Notification" in window && Notification.permission === "granted") {
      const note = new Notification(say("new_waiting", { name: nameOf(conversation.customer) }), {
        body: conversation.preview ? conversation.preview.text : "", tag: "fd-conversation-" + conversation.id });
      note.onclick = () => { window.focus(); location.href = "/app/conversations/" + conversation.id; };
    }
  }

  let audio = null;
  function beep() {  // two short tones, made here: no sound file to load
    try {
      audio = audio || new AudioContext();
      for (const [offset, pitch] of [[0, 880], [0.18, 660]]) {
        const tone = audio.createOscillator();
        const volume = audio.createGain();
        tone.frequency.value = pitch;
        volume.gain.setValueAtTime(0.15, audio.currentTime + offset);
        volume.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + offset + 0.16);
        tone.connect(volume).connect(audio.destination);
        tone.start(audio.currentTime + offset);
        tone.stop(audio.currentTime + offset + 0.17);
      }
    } catch (error) { /* no audio here */ }
  }

  const notifyBox = document.getElementById("alert-notify");
  const denied = document.getElementById("alert-denied");
  if (!("Notification" in window)) document.getElementById("alert-notify-row").hidden = true;
  notifyBox.checked = alerts.notify && "Notification" in window && Notification.permission === "granted";
  document.getElementById("alert-sound").checked = alerts.sound;
  document.getElementById("alert-title").checked = alerts.title;
  document.getElementById("alerts").addEventListener("change", async (event) => {
    const box = event.target;
    const choice = { "alert-notify": "notify", "alert-sound": "sound", "alert-title": "title" }[box.id];
    if (!choice) return;
    if (choice === "notify" && box.checked && Notification.permission !== "granted") {
      box.checked = (await Notification.requestPermission()) === "granted";
    }
    denied.hidden = !(choice === "notify" && "Notification" in window && Notification.permission === "denied");
    alerts[choice] = box.checked;
    store(alertsKey, alerts);
    showTitle();
  });

  /* --- the keyboard ------------------------------------------------------------------------------------ */

  function select(index, scroll = true) {
    const items = [...list.children];
    if (!items.length) return;
    index = Math.max(0, Math.min(index, items.length - 1));
    for (const item of items) item.classList.remove("selected");
    items[index].classList.add("selected");
    selected = index;
    if (scroll) {
      items[index].scrollIntoView({ block: "nearest" });
      items[index].querySelector("a").focus({ preventScroll: true });
    }
  }

  function toggleHelp() {
    if (help.open) help.close(); else help.showModal();
  }
  document.getElementById("help-open").addEventListener("click", toggleHelp);

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target.closest("input, textarea, select, [contenteditable]");
    if (typing) {
      if (event.key === "Escape" && event.target.id === "search") event.target.blur();
      return;
    }
    if (event.key === "?") { event.preventDefault(); toggleHelp(); return; }
    if (help.open) return;
    const tabs = [...form.querySelectorAll("input[name=view]")];
    if (event.key === "j" || event.key === "ArrowDown" && event.target === document.body) {
      event.preventDefault(); select(selected + 1);
    } else if (event.key === "k" || event.key === "ArrowUp" && event.target === document.body) {
      event.preventDefault(); select(selected - 1);
    } else if (event.key === "Enter" && selected >= 0 && !event.target.closest("a, button")) {
      event.preventDefault(); list.children[selected].querySelector("a").click();
    } else if (event.key === "/") {
      event.preventDefault(); document.getElementById("search").focus();
    } else if (/^[1-6]$/.test(event.key) && tabs[Number(event.key) - 1]) {
      tabs[Number(event.key) - 1].checked = true;
      form.dispatchEvent(new Event("input"));
    }
  });

  /* --- wiring ------------------------------------------------------------------------------------------ */

  let typing = null;
  form.addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => load(false).catch((error) => FD.toast(error.message)),
      event.target && event.target.name === "q" ? 250 : 0);
    if (event.target && ["channel", "assignee"].includes(event.target.name)) counts().catch(() => {});
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  more.addEventListener("click", () => load(true).catch((error) => FD.toast(error.message)));
  setInterval(() => {  // the waiting times grow while the page is open
    for (const item of list.querySelectorAll(".waited")) {
      item.textContent = say("waiting_for", { time: duration(item.dataset.since) });
    }
  }, 60000);
  await Promise.all([load(false), counts().catch(() => {})]);
  FD.live((id) => refresh(id), () => { load(false).catch(() => {}); counts().catch(() => {}); });
});
