/* One conversation: the transcript (live), and for staff its state, actions, replies and notes, the
   customer beside it, saved replies, and warnings when a teammate owns it, is writing, or replied. */
"use strict";

FD.start(async (me) => {
  const id = Number(location.pathname.split("/").filter(Boolean).pop());
  const staff = FD.isStaff(me);
  const acting = FD.canAct(me);  // a viewer reads, and changes nothing
  const $ = (selector) => document.getElementById(selector);
  const transcript = $("transcript");
  const older = $("older");
  const composer = $("composer");
  const text = $("text");
  const send = $("send");
  const words = $("convo-strings").dataset;
  const say = (key, params) => {
    let result = words[key] || key;
    for (const [name, value] of Object.entries(params || {})) result = result.split("{" + name + "}").join(value);
    return result;
  };
  let lastId = 0;
  let firstId = null;
  let conversation = null;
  const mine = new Set();  // ids of the replies this page sent
  let draftSince = null;  // when the current draft was started (the collision check's start)
  let collided = null;  // a teammate's reply that came in while this draft was being written

  const authors = { customer: staff ? "customer" : "you", ai: "assistant", manager: "team", note: "note", system: "system" };

  function messageItem(message) {
    const who = message.author_name && (message.author === "manager" || message.author === "note")
      ? message.author_name : FD.t(authors[message.author]);
    const item = FD.el("li", { class: "msg " + message.author, "data-id": message.id, "data-shape": shape(message) },
      FD.el("div", { class: "who" }, who, FD.el("span", { class: "when" }, FD.when(message.created_at))),
      FD.el("div", { class: "body", html: message.html || "" }));
    message.attachments.forEach((attachment, index) => {
      item.append(attachmentView(message, attachment, index));
      if (attachment.transcript) {  // a voice's words, as the transcriber heard them
        item.append(FD.el("div", { class: "voice-transcript" },
          FD.el("span", { class: "muted small" }, "🎙 " + FD.t("voice_transcript") + " "), attachment.transcript));
      }
    });
    if (message.sources && message.sources.length) item.append(sourcesLine(message.sources));
    if (message.ai && message.ai.source === "knowledge") item.append(FD.el("div", { class: "meta" }, FD.t("from_kb")));
    else if (message.ai && message.ai.model) {
      item.append(FD.el("div", { class: "meta" }, FD.t("ai_meta", {
        model: message.ai.model, tokens_in: message.ai.tokens_in ?? 0, tokens_out: message.ai.tokens_out ?? 0,
        cost: Number(message.ai.cost || 0).toFixed(4) })));
    }
    if (message.ai && message.ai.passages && message.ai.passages.length) item.append(passagesList(message.ai.passages));
    if (acting && message.author === "manager" && message.text) {
      item.append(FD.el("div", { class: "meta" },
        FD.el("button", { type: "button", class: "link small add-kb", "data-message": message.id }, say("addKb"))));
    }
    return item;
  }

  /* A file a customer or a manager sent: staff see an image in place and fetch any other file, through the
     staff route that checks they may see this conversation (with the page's own credentials). */
  const files = {};
  function fileUrl(message, index) {
    const key = message.id + "/" + index;
    files[key] = files[key] || fetch(`/api/conversations/${id}/messages/${message.id}/files/${index}`,
      { headers: FD.headers("GET", false), credentials: "same-origin" })
      .then((response) => { if (!response.ok) throw new Error(String(response.status)); return response.blob(); })
      .then((blob) => URL.createObjectURL(blob));
    files[key].catch(() => { delete files[key]; });
    return files[key];
  }

  function attachmentView(message, attachment, index) {
    const label = "📎 " + (attachment.name || attachment.type);
    if (!staff || !attachment.file) return FD.el("div", { class: "muted" }, label);
    if (attachment.image) {
      const image = FD.el("img", { class: "attachment", alt: attachment.name || attachment.type });
      fileUrl(message, index).then((url) => { image.src = url; },
        () => image.replaceWith(FD.el("div", { class: "muted" }, label)));
      return image;
    }
    const link = FD.el("a", { class: "attachment", href: "#", download: attachment.name || "file" }, label);
    link.addEventListener("click", (event) => {
      if (link.dataset.ready) return;
      event.preventDefault();
      fileUrl(message, index).then((url) => { link.href = url; link.dataset.ready = "1"; link.click(); }, () => {});
    });
    return FD.el("div", {}, link);
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

  /* What a shown message looks like: when it changes (an album's later items joined it, a voice was heard), it is
     drawn again. */
  function shape(message) {
    const heard = message.attachments.filter((attachment) => attachment.transcript).length;
    return `${message.attachments.length}:${heard}:${message.text}`;
  }

  /* Each message in its place by id, whenever it arrives: a notice stored before a reply ("Mia joined")
     gets its words a moment after the reply was shown, and still sits above it. */
  function add(messages) {
    const added = [];
    for (const message of messages) {
      const shown = transcript.querySelector(`li[data-id="${message.id}"]`);
      if (shown) {
        if (shown.dataset.shape !== shape(message)) shown.replaceWith(messageItem(message));
        continue;
      }
      const item = messageItem(message);
      const next = [...transcript.children].find((other) => Number(other.dataset.id) > message.id);
      transcript.insertBefore(item, next || null);
      lastId = Math.max(lastId, message.id);
      firstId = firstId === null ? message.id : Math.min(firstId, message.id);
      added.push(message);
    }
    return added;
  }

  function atBottom() {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 40;
  }

  function toBottom() {
    window.scrollTo(0, document.documentElement.scrollHeight);
  }

  function showConversation(row) {
    conversation = row;
    $("who").textContent = staff ? row.customer.name || FD.t("website_visitor") : FD.t("channel_" + row.channel);
    document.title = $("who").textContent;
    const state = $("state");
    state.textContent = FD.stateLabel(row);
    state.className = "badge " + row.state;
    const details = [FD.t("channel_" + row.channel)];
    if (row.customer.username && staff) details.push("@" + row.customer.username);
    if (row.rating) details.push(FD.t("rating", { stars: "⭐".repeat(row.rating) }));
    if (row.blocked_bot) details.push(FD.t("blocked"));
    if (row.banned) details.push(FD.t("banned"));
    $("details").textContent = details.join(" · ");
    $("summary").hidden = false;
    if (!acting) return;
    const ours = row.state === "assigned" && row.assignee && row.assignee.id === me.id;
    const visible = { take: row.state !== "closed" && !ours, return: row.state === "waiting" || row.state === "assigned",
                      close: row.state !== "closed", ban: !row.banned, unban: row.banned };
    for (const button of document.querySelectorAll("#actions button")) button.hidden = !visible[button.dataset.action];
    $("assign-box").hidden = row.state === "closed";
    $("actions").hidden = false;
    composer.hidden = false;
    const someoneElse = row.state === "assigned" && row.assignee && row.assignee.id !== me.id;
    $("owner-warning").hidden = !someoneElse;
    if (someoneElse) $("owner-warning").textContent = "⚠ " + say("owner", { name: row.assignee.name });
  }

  async function loadConversation() {
    showConversation(await FD.api("GET", "/api/conversations/" + id));
  }

  async function loadNew() {
    const bottom = atBottom();
    const page = await FD.api("GET", `/api/conversations/${id}/messages?after=${lastId}&limit=100`);
    // The latest few again: a notice stored before the last reply may have got its words since.
    const recent = await FD.api("GET", `/api/conversations/${id}/messages?limit=10`);
    const added = add([...page.messages, ...recent.messages]);
    noticeCollision(added);
    if (bottom && added.length) toBottom();
  }

  async function loadOlder() {
    const query = firstId ? `?before=${firstId}&limit=50` : "?limit=50";
    const page = await FD.api("GET", `/api/conversations/${id}/messages${query}`);
    add(page.messages);
    older.hidden = !page.has_more;
  }

  /* A teammate's reply that arrived while a draft was being written: say so before it is sent. */
  function noticeCollision(added) {
    if (!acting || draftSince === null || !text.value.trim()) return;
    // New to this page while the draft exists: written since (clocks of this device and the server aside).
    const theirs = added.find((message) => message.author === "manager" && !mine.has(message.id));
    if (!theirs) return;
    collided = theirs;
    $("collision-warning").textContent = "⚠ " + say("collision", { name: theirs.author_name || FD.t("team") });
    $("collision-warning").hidden = false;
    send.textContent = say("sendAnyway");
  }

  function clearCollision() {
    collided = null;
    $("collision-warning").hidden = true;
    send.textContent = say("send");
  }

  try {
    await loadConversation();
  } catch (error) {
    FD.status(error.message);
    return;
  }
  await loadOlder();
  toBottom();
  // A reader at the end stays there while the page around the messages changes (the panel, a warning).
  let following = true;
  window.addEventListener("scroll", () => { following = atBottom(); }, { passive: true });
  new ResizeObserver(() => { if (following) toBottom(); }).observe($("layout"));

  older.addEventListener("click", () => loadOlder().catch((error) => FD.toast(error.message)));

  $("actions").addEventListener("click", async (event) => {
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

  // --- the composer -------------------------------------------------------------------------------------

  const mac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
  for (const key of document.querySelectorAll("kbd[data-mod]")) key.textContent = mac ? "⌘" : "Ctrl";

  composer.addEventListener("change", (event) => {
    if (event.target.name !== "mode") return;
    const note = event.target.value === "note";
    composer.classList.toggle("note", note);
    text.placeholder = FD.t(note ? "note_placeholder" : "reply_placeholder");
  });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) composer.requestSubmit();
  });

  // Others see "X is writing" while this page's draft grows: told at most every 3 s, forgotten after 6 s.
  let toldAt = 0;
  text.addEventListener("input", () => {
    if (!text.value.trim()) { draftSince = null; clearCollision(); return; }
    if (draftSince === null) draftSince = Date.now();
    const mode = new FormData(composer).get("mode");
    if (mode === "reply" && Date.now() - toldAt > 3000) {
      toldAt = Date.now();
      FD.api("POST", `/api/conversations/${id}/typing`, {}).catch(() => {});
    }
  });

  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = text.value.trim();
    if (!body) return;
    const mode = new FormData(composer).get("mode");
    send.disabled = true;
    try {
      const message = await FD.api("POST", `/api/conversations/${id}/${mode === "note" ? "notes" : "reply"}`, { text: body });
      mine.add(message.id);
      text.value = "";
      draftSince = null;
      clearCollision();
      add([message]);
      toBottom();
      await loadConversation();
      await loadNew();
    } catch (error) {
      FD.toast(error.message);
    } finally {
      send.disabled = false;
    }
  });
  // The page held the composer disabled until here: a reply typed earlier would have had no one to send it.
  text.disabled = false;
  send.disabled = false;

  const typingWarning = $("typing-warning");
  let typingTimer = null;
  document.addEventListener("fd-typing", (event) => {
    const data = event.detail;
    if (data.id !== id || !data.by) return;
    typingWarning.textContent = "✎ " + say("typing", { name: data.by.name });
    typingWarning.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => { typingWarning.hidden = true; }, 6000);
  });

  // --- assigning to a teammate ------------------------------------------------------------------------------

  if (acting) {
    const assign = $("assign");
    FD.api("GET", "/api/teammates").then((found) => {
      for (const mate of found.teammates) {
        assign.append(FD.el("option", { value: mate.id }, mate.id === me.id ? `${mate.name} (${FD.t("you")})` : mate.name));
      }
      $("assign-box").hidden = !conversation || conversation.state === "closed";
    }).catch(() => {});
    assign.addEventListener("change", async () => {
      const chosen = Number(assign.value);
      if (!chosen) return;
      assign.disabled = true;
      try {
        showConversation(await FD.api("POST", `/api/conversations/${id}/assign`, { user_id: chosen }));
        FD.toast(say("assigned", { name: conversation.assignee ? conversation.assignee.name : "" }));
        await loadNew();
      } catch (error) {
        FD.toast(error.message);
      } finally {
        assign.value = "";
        assign.disabled = false;
      }
    });
  }

  // --- the customer beside the conversation ----------------------------------------------------------------

  async function loadPanel() {
    const panel = await FD.api("GET", `/api/conversations/${id}/customer`);
    const facts = $("panel-facts");
    const fact = (label, value) => [FD.el("dt", {}, label), FD.el("dd", {}, value)];
    const rated = panel.ratings ? say("ratingsValue", { average: panel.average_rating.toFixed(1), count: panel.ratings })
      : say("noRatings");
    facts.replaceChildren(
      ...fact(say("language"), panel.language ? panel.language.toUpperCase() : "—"),
      ...fact(say("channel"), FD.t("channel_" + panel.channel)),
      ...fact(say("firstSeen"), FD.when(panel.first_seen)),
      ...fact(say("ratings"), rated),
      ...(panel.telegram_id ? fact(say("telegramId"), String(panel.telegram_id)) : []));
    $("panel-conversations").replaceChildren(...panel.conversations.map((row) => FD.el("li", {},
      row.id === id ? FD.el("span", { class: "current" }, `#${row.id} · ${say("thisOne")}`)
        : FD.el("a", { href: "/app/conversations/" + row.id }, "#" + row.id),
      " ", FD.el("span", { class: "badge " + row.state }, FD.stateLabel(row)),
      row.rating ? " " + "★".repeat(row.rating) : "",
      FD.el("div", { class: "muted small" }, FD.when(row.created_at) + (row.question ? " · " + row.question : "")))));
    if (panel.conversation_count > panel.conversations.length) {
      $("panel-conversations").append(FD.el("li", { class: "muted small" }, say("conversationCount", { count: panel.conversation_count })));
    }
    $("panel-notes").replaceChildren(...panel.notes.map((note) => FD.el("li", {},
      FD.el("div", {}, note.text),
      FD.el("div", { class: "muted small" }, (note.author_name || "") + " · " + FD.when(note.created_at)
        + (note.conversation_id !== id ? ` · #${note.conversation_id}` : "")))));
    $("panel-no-notes").hidden = panel.notes.length > 0;
    $("panel").hidden = false;
  }

  if (staff) {
    const wide = window.matchMedia("(min-width: 1000px)");
    $("panel").open = wide.matches;
    wide.addEventListener("change", () => { $("panel").open = wide.matches; });
    loadPanel().catch(() => {});
  }

  // --- saved replies ---------------------------------------------------------------------------------------

  let replies = [];
  async function loadReplies() {
    replies = (await FD.api("GET", "/api/saved-replies")).replies;
    showPicker();
    showManaged();
  }

  const picker = $("picker");
  const filter = $("picker-filter");
  function showPicker() {
    const wanted = filter.value.trim().toLowerCase();
    const shown = replies.filter((reply) => !wanted || reply.name.includes(wanted) || reply.text.toLowerCase().includes(wanted));
    $("picker-list").replaceChildren(...shown.map((reply) => FD.el("li", { role: "option" },
      FD.el("button", { type: "button", class: "pick", "data-id": reply.id },
        FD.el("span", { class: "name" }, reply.name), FD.el("span", { class: "muted small" }, reply.text)))));
    $("picker-empty").hidden = replies.length > 0;
  }

  function insert(snippet) {
    const start = text.selectionStart ?? text.value.length;
    const end = text.selectionEnd ?? text.value.length;
    text.value = text.value.slice(0, start) + snippet + text.value.slice(end);
    text.focus();
    text.selectionStart = text.selectionEnd = start + snippet.length;
    text.dispatchEvent(new Event("input"));
  }

  function openPicker(open) {
    picker.hidden = !open;
    $("saved-button").setAttribute("aria-expanded", String(open));
    if (open) { filter.value = ""; showPicker(); filter.focus(); }
  }

  if (acting) {
    loadReplies().catch(() => {});
    $("saved-button").addEventListener("click", () => openPicker(picker.hidden));
    filter.addEventListener("input", showPicker);
    filter.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { openPicker(false); text.focus(); }
      if (event.key === "Enter") {
        event.preventDefault();
        const first = $("picker-list").querySelector("button.pick");
        if (first) first.click();
      }
    });
    $("picker-list").addEventListener("click", (event) => {
      const button = event.target.closest("button.pick");
      if (!button) return;
      const reply = replies.find((row) => row.id === Number(button.dataset.id));
      openPicker(false);
      if (reply) insert(reply.text);
    });
    $("manage-replies").addEventListener("click", () => { openPicker(false); editReply(null); $("replies-dialog").showModal(); });
    // Held disabled by the page until here, as the composer is: a tap before this would have opened nothing.
    $("saved-button").disabled = false;
  }

  // Managing them: the list, and one form for a new reply or the one being edited.
  let editing = null;
  function showManaged() {
    $("replies-list").replaceChildren(...replies.map((reply) => FD.el("li", {},
      FD.el("div", { class: "name" }, reply.name),
      FD.el("div", { class: "reply-text muted small" }, reply.text),
      FD.el("div", { class: "row tools" },
        FD.el("button", { type: "button", class: "link small", "data-edit": reply.id }, say("edit")),
        FD.el("button", { type: "button", class: "link small danger-text", "data-delete": reply.id }, say("delete"))))));
  }

  function editReply(reply) {
    editing = reply;
    $("reply-form-title").textContent = reply ? say("editReply", { name: reply.name }) : say("newReply");
    $("reply-name").value = reply ? reply.name : "";
    $("reply-text").value = reply ? reply.text : text.value.trim();
    $("reply-cancel").hidden = !reply;
  }

  $("replies-list").addEventListener("click", async (event) => {
    const edit = event.target.closest("[data-edit]");
    const remove = event.target.closest("[data-delete]");
    if (edit) editReply(replies.find((row) => row.id === Number(edit.dataset.edit)) || null);
    if (remove) {
      const reply = replies.find((row) => row.id === Number(remove.dataset.delete));
      if (!reply || !(await FD.confirmed(say("confirmDelete", { name: reply.name })))) return;
      try {
        await FD.api("DELETE", `/api/saved-replies/${reply.id}`);
        if (editing && editing.id === reply.id) editReply(null);
        await loadReplies();
      } catch (error) {
        FD.toast(error.message);
      }
    }
  });
  $("reply-cancel").addEventListener("click", () => editReply(null));
  $("reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: $("reply-name").value, text: $("reply-text").value };
    try {
      if (editing) await FD.api("PATCH", `/api/saved-replies/${editing.id}`, body);
      else await FD.api("POST", "/api/saved-replies", body);
      editReply(null);
      await loadReplies();
    } catch (error) {
      FD.toast(error.message);
    }
  });

  // --- a manager's answer into the knowledge base ------------------------------------------------------------

  let answering = null;
  transcript.addEventListener("click", (event) => {
    const button = event.target.closest("button.add-kb");
    if (!button) return;
    const item = button.closest("li.msg");
    let question = "";
    for (let other = item.previousElementSibling; other; other = other.previousElementSibling) {
      if (other.classList.contains("customer")) { question = other.querySelector(".body").textContent; break; }
    }
    answering = { id: Number(button.dataset.message), button };
    $("kb-question").value = question;
    $("kb-answer").value = item.querySelector(".body").innerText;
    $("kb-dialog").showModal();
    (question ? $("kb-answer") : $("kb-question")).focus();
  });
  $("kb-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!answering) return;
    try {
      await FD.api("POST", `/api/conversations/${id}/messages/${answering.id}/knowledge`,
                   { question: $("kb-question").value, answer: $("kb-answer").value });
      answering.button.replaceWith(FD.el("span", { class: "in-kb" }, "✓ " + say("inKb")));
      $("kb-dialog").close();
      FD.toast(say("kbAdded"));
    } catch (error) {
      FD.toast(error.message);
    }
  });

  FD.live(async (changed) => {
    if (changed !== id) return;
    await Promise.all([loadConversation(), loadNew()]).catch(() => {});
    if (staff) loadPanel().catch(() => {});
  }, () => Promise.all([loadConversation(), loadNew()]).catch(() => {}));
});
