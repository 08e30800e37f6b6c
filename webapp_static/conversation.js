/* One conversation: the transcript (live), and for staff its state, actions, replies and notes. */
"use strict";

FD.start(async (me) => {
  const id = Number(location.pathname.split("/").filter(Boolean).pop());
  const staff = FD.isStaff(me);
  const acting = FD.canAct(me);  // a viewer reads, and changes nothing
  const transcript = document.getElementById("transcript");
  const older = document.getElementById("older");
  const composer = document.getElementById("composer");
  const text = document.getElementById("text");
  let lastId = 0;
  let firstId = null;
  let conversation = null;

  const authors = { customer: staff ? "customer" : "you", ai: "assistant", manager: "team", note: "note", system: "system" };

  function messageItem(message) {
    const who = message.author_name && (message.author === "manager" || message.author === "note")
      ? message.author_name : FD.t(authors[message.author]);
    const item = FD.el("li", { class: "msg " + message.author, "data-id": message.id },
      FD.el("div", { class: "who" }, who, FD.el("span", { class: "when" }, FD.when(message.created_at))),
      FD.el("div", { class: "body", html: message.html || "" }));
    for (const attachment of message.attachments) {
      item.append(FD.el("div", { class: "muted" }, "📎 " + (attachment.name || attachment.type)));
    }
    if (message.sources && message.sources.length) item.append(sourcesLine(message.sources));
    if (message.ai && message.ai.source === "knowledge") item.append(FD.el("div", { class: "meta" }, FD.t("from_kb")));
    else if (message.ai && message.ai.model) {
      item.append(FD.el("div", { class: "meta" }, FD.t("ai_meta", {
        model: message.ai.model, tokens_in: message.ai.tokens_in ?? 0, tokens_out: message.ai.tokens_out ?? 0,
        cost: Number(message.ai.cost || 0).toFixed(4) })));
    }
    if (message.ai && message.ai.passages && message.ai.passages.length) item.append(passagesList(message.ai.passages));
    return item;
  }

  // The documents and pages an answer names: pages as links, documents by their title.
  function sourcesLine(sources) {
    const parts = [];
    sources.forEach((source, index) => {
      if (index) parts.push("; ");
      parts.push(/^https?:\/\//.test(source.url) ?
        FD.el("a", { href: source.url, target: "_blank", rel: "noopener" }, source.title || source.url) : source.title);
    });
    return FD.el("div", { class: "sources" }, FD.t("sources") + " ", ...parts);
  }

  // Staff see what the AI was given, best first, so a wrong answer can be traced to its passage.
  function passagesList(passages) {
    const list = FD.el("ol", { class: "passages" }, ...passages.map((passage) => FD.el("li", {},
      FD.el("div", { class: "passage-label" },
        passage.url ? FD.el("a", { href: passage.url, target: "_blank", rel: "noopener" }, passage.label) : passage.label,
        FD.el("span", { class: "muted small" }, " · " + (passage.similarity == null ? FD.t("passage_by_words")
          : FD.t("passage_similarity", { value: passage.similarity.toFixed(2) })))),
      FD.el("div", { class: "passage-text muted small" }, passage.text))));
    return FD.el("details", { class: "meta passages-box" },
      FD.el("summary", {}, FD.t("passages_given", { count: passages.length })), list);
  }

  function add(messages, where) {
    const items = [];
    for (const message of messages) {
      if (transcript.querySelector(`li[data-id="${message.id}"]`)) continue;
      items.push(messageItem(message));
      lastId = Math.max(lastId, message.id);
      firstId = firstId === null ? message.id : Math.min(firstId, message.id);
    }
    if (where === "start") transcript.prepend(...items); else transcript.append(...items);
  }

  function showConversation(row) {
    conversation = row;
    document.getElementById("who").textContent = staff ? row.customer.name : FD.t("channel_" + row.channel);
    document.title = document.getElementById("who").textContent;
    const state = document.getElementById("state");
    state.textContent = FD.stateLabel(row);
    state.className = "badge " + row.state;
    const details = [FD.t("channel_" + row.channel)];
    if (row.customer.username && staff) details.push("@" + row.customer.username);
    if (row.rating) details.push(FD.t("rating", { stars: "⭐".repeat(row.rating) }));
    if (row.blocked_bot) details.push(FD.t("blocked"));
    if (row.banned) details.push(FD.t("banned"));
    document.getElementById("details").textContent = details.join(" · ");
    document.getElementById("summary").hidden = false;
    if (!acting) return;
    const mine = row.state === "assigned" && row.assignee && row.assignee.id === me.id;
    const visible = { take: row.state !== "closed" && !mine, return: row.state === "waiting" || row.state === "assigned",
                      close: row.state !== "closed", ban: !row.banned, unban: row.banned };
    for (const button of document.querySelectorAll("#actions button")) button.hidden = !visible[button.dataset.action];
    document.getElementById("actions").hidden = false;
    composer.hidden = false;
  }

  async function loadConversation() {
    showConversation(await FD.api("GET", "/api/conversations/" + id));
  }

  async function loadNew() {
    const page = await FD.api("GET", `/api/conversations/${id}/messages?after=${lastId}&limit=100`);
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    add(page.messages, "end");
    if (atBottom && page.messages.length) window.scrollTo(0, document.body.scrollHeight);
  }

  async function loadOlder() {
    const query = firstId ? `?before=${firstId}&limit=50` : "?limit=50";
    const page = await FD.api("GET", `/api/conversations/${id}/messages${query}`);
    add(page.messages, "start");  // oldest first: prepended as a block, in order
    older.hidden = !page.has_more;
  }

  try {
    await loadConversation();
  } catch (error) {
    FD.status(error.message);
    return;
  }
  await loadOlder();
  window.scrollTo(0, document.body.scrollHeight);

  older.addEventListener("click", () => loadOlder().catch((error) => FD.toast(error.message)));

  document.getElementById("actions").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "ban" && !(await FD.confirmed(FD.t("confirm_ban")))) return;
    button.disabled = true;
    try {
      showConversation(await FD.api("POST", `/api/conversations/${id}/actions`, { action }));
      await loadNew();
    } catch (error) {
      FD.toast(error.message);
      await loadConversation().catch(() => {});
    } finally {
      button.disabled = false;
    }
  });

  composer.addEventListener("change", (event) => {
    if (event.target.name !== "mode") return;
    const note = event.target.value === "note";
    composer.classList.toggle("note", note);
    text.placeholder = FD.t(note ? "note_placeholder" : "reply_placeholder");
  });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) composer.requestSubmit();
  });
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = text.value.trim();
    if (!body) return;
    const mode = new FormData(composer).get("mode");
    const send = document.getElementById("send");
    send.disabled = true;
    try {
      const message = await FD.api("POST", `/api/conversations/${id}/${mode === "note" ? "notes" : "reply"}`, { text: body });
      text.value = "";
      add([message], "end");
      window.scrollTo(0, document.body.scrollHeight);
      await loadConversation();
    } catch (error) {
      FD.toast(error.message);
    } finally {
      send.disabled = false;
    }
  });

  FD.live(async (changed) => {
    if (changed !== id) return;
    await Promise.all([loadConversation(), loadNew()]).catch(() => {});
  }, () => Promise.all([loadConversation(), loadNew()]).catch(() => {}));
});
