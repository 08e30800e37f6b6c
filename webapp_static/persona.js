/* The persona editor: a guided form that writes the prompt (the prompt itself one click away), a test
   chat that answers with the prompt as it is now, the versions, what each one changed, and rollback.
   The server sends the diff as data; it is shown with textContent only, never as markup. */
"use strict";

FD.start(async (me) => {
  if (!FD.isStaff(me)) { location.replace("/app/"); return; }
  const editor = document.getElementById("editor");
  const text = document.getElementById("text");
  const save = document.getElementById("save");
  const discard = document.getElementById("discard");
  const count = document.getElementById("count");
  const versions = document.getElementById("versions");
  const older = document.getElementById("older");
  const restore = document.getElementById("restore");
  const guided = document.getElementById("guided");
  const handEdited = document.getElementById("hand-edited");
  let overview = null;
  let saved = "";  // the text as the server has it, to tell whether there is anything to save
  let selected = null;
  let composed = null;  // the text the form wrote last; null: the text is not the form's (edited by hand)

  /* --- the guided form: it writes the prompt, unless the prompt was edited by hand ------------------ */

  function readForm() {
    const form = editor.elements;
    return {
      language: form.language.value, about: form.about.value, tone: form.tone.value, avoid: form.avoid.value,
      handoff: [...guided.querySelectorAll("input[name=handoff]:checked")].map((box) => box.value),
      handoff_other: form.handoff_other.value,
    };
  }

  function fillForm(values) {
    const form = editor.elements;
    form.language.value = values.language;
    form.about.value = values.about;
    form.avoid.value = values.avoid;
    form.handoff_other.value = values.handoff_other;
    for (const radio of guided.querySelectorAll("input[name=tone]")) radio.checked = radio.value === values.tone;
    for (const box of guided.querySelectorAll("input[name=handoff]")) box.checked = values.handoff.includes(box.value);
  }

  function showHandEdited() {
    handEdited.hidden = composed !== null;
  }

  let composing = 0;
  async function writeFromForm() {
    const ticket = ++composing;
    const result = await FD.api("POST", "/api/persona/compose", { form: readForm() });
    if (ticket !== composing) return;  // a later change is on its way
    composed = result.text;
    text.value = result.text;
    showHandEdited();
    updateCount();
  }

  let typing = null;
  guided.addEventListener("input", () => {
    if (composed === null) return;  // the prompt is the person's own now: the form leaves it alone
    clearTimeout(typing);
    typing = setTimeout(() => writeFromForm().catch((error) => FD.toast(error.message)), 250);
  });
  document.getElementById("from-form").addEventListener("click", () => {
    writeFromForm().catch((error) => FD.toast(error.message));
  });

  function who(version) {
    const parts = [FD.when(version.created_at)];
    if (version.author) parts.push(version.author.name);
    if (version.restored_from) parts.push(FD.t("persona_restored_from", { n: version.restored_from }));
    return parts.join(" · ");
  }

  function updateCount() {
    const length = text.value.trim().length;
    count.textContent = FD.t("persona_chars", { count: length, max: overview.max_chars });
    count.classList.toggle("error", length > overview.max_chars);
    const changed = text.value.trim() !== saved;
    save.disabled = !changed || !length || length > overview.max_chars;
    discard.disabled = !changed;
  }

  function versionRow(version) {
    const badge = version.active ? FD.el("span", { class: "badge ai" }, FD.t("persona_active")) : null;
    const labels = version.labels.map((label) => FD.el("span", { class: "badge label" }, label));
    return FD.el("li", { "data-version": version.version },
      FD.el("button", { type: "button", "aria-pressed": String(version.version === selected) },
        FD.el("span", { class: "name" }, FD.t("persona_version", { n: version.version })),
        FD.el("span", { class: "time" }, badge, ...labels),
        FD.el("span", { class: "preview" }, who(version) + " — " + version.preview)));
  }

  function showVersions(list, append) {
    if (!append) versions.replaceChildren();
    for (const version of list) versions.append(versionRow(version));
    document.getElementById("history").hidden = !versions.children.length;
  }

  async function load(select) {
    overview = await FD.api("GET", "/api/persona");
    const active = overview.active;
    document.getElementById("active-label").textContent = active
      ? FD.t("persona_active_version", { n: active.version }) + " · " + who(active) : FD.t("persona_default");
    saved = overview.text;
    text.value = overview.text;
    fillForm(overview.form);
    composed = overview.form_writes_text ? overview.text : null;
    showHandEdited();
    if (!select) document.getElementById("raw").open = composed === null;  // a prompt of their own: show it
    const name = overview.business_name;
    document.getElementById("business-name").textContent = name ? FD.t("persona_business", { name })
      : FD.t("persona_no_business");
    document.getElementById("try-no-ai").hidden = overview.ai_enabled;
    editor.hidden = false;
    updateCount();
    showVersions(overview.versions, false);
    older.hidden = !overview.has_more;
    const chosen = select || (active ? active.version : null);
    if (chosen) await showChanges(chosen);
    else document.getElementById("changes").hidden = true;
  }

  function lineItem(line) {
    const sign = { same: " ", added: "+", removed: "−" }[line.kind];
    const body = FD.el("span", { class: "text" });
    if (line.segments.length) {
      for (const segment of line.segments) body.append(segment.changed ? FD.el("mark", {}, segment.text) : segment.text);
    } else {
      body.textContent = line.text;
    }
    if (!line.text) body.textContent = "\u00a0";  // an empty line keeps its height
    return FD.el("li", { class: line.kind },
      FD.el("span", { class: "num", "aria-hidden": "true" }, line.old ?? ""),
      FD.el("span", { class: "num", "aria-hidden": "true" }, line.new ?? ""),
      FD.el("span", { class: "sign", "aria-label": FD.t("diff_" + line.kind) }, sign), body);
  }

  async function showChanges(number) {
    selected = number;
    for (const button of versions.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(Number(button.parentElement.dataset.version) === number));
    }
    const changes = await FD.api("GET", `/api/persona/versions/${number}/diff`);
    if (selected !== number) return;  // another version was picked meanwhile
    document.getElementById("changes-title").textContent = FD.t("persona_changes", { n: number });
    const against = changes.previous === null ? FD.t("persona_against_default")
      : FD.t("persona_against", { n: changes.previous });
    document.getElementById("changes-summary").textContent =
      against + " · " + FD.t("persona_counts", { added: changes.added, removed: changes.removed });
    const diff = document.getElementById("diff");
    diff.replaceChildren();
    changes.hunks.forEach((hunk, index) => {
      if (index > 0) diff.append(FD.el("li", { class: "gap", "aria-hidden": "true" }, "⋯"));
      for (const line of hunk) diff.append(lineItem(line));
    });
    if (!changes.hunks.length) diff.append(FD.el("li", { class: "gap" }, FD.t("persona_no_changes")));
    showLabels(number).catch((error) => FD.toast(error.message));
    const active = overview.active && overview.active.version === number;
    restore.hidden = Boolean(active);
    restore.dataset.version = number;
    document.getElementById("changes").hidden = false;
  }

  // Labels name versions ("production", "draft"): a label is on one version at a time.
  const labelList = document.getElementById("labels");
  const labelForm = document.getElementById("label-form");

  async function showLabels(number) {
    const version = await FD.api("GET", `/api/persona/versions/${number}`);
    if (selected !== number) return;
    labelList.replaceChildren(...version.labels.map((label) => FD.el("li", {},
      FD.el("span", { class: "badge label" }, label),
      FD.el("button", { type: "button", class: "link", "data-label": label,
                        "aria-label": FD.t("label_remove", { label }) }, "×"))));
  }

  async function changeLabel(method, path, body) {
    const number = selected;
    try {
      await FD.api(method, path, body);
      await load(number);
    } catch (error) {
      FD.toast(error.message);
    }
  }

  labelForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = labelForm.elements.label;
    if (!input.value.trim()) return;
    await changeLabel("POST", `/api/persona/versions/${selected}/labels`, { label: input.value });
    input.value = "";
  });
  labelList.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-label]");
    if (button) {
      await changeLabel("DELETE", `/api/persona/versions/${selected}/labels/${encodeURIComponent(button.dataset.label)}`);
    }
  });

  text.addEventListener("input", () => {
    if (composed !== null && text.value !== composed) composed = null;  // edited by hand from now on
    showHandEdited();
    updateCount();
  });
  discard.addEventListener("click", () => {
    text.value = saved;
    fillForm(overview.form);
    composed = overview.form_writes_text ? saved : null;
    showHandEdited();
    updateCount();
  });
  editor.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      const base = overview.active ? overview.active.version : 0;
      const created = await FD.api("POST", "/api/persona/versions",
        { text: text.value, base_version: base, form: readForm() });
      FD.toast(FD.t("persona_saved", { n: created.version }));
      await load(created.version);
    } catch (error) {
      FD.toast(error.message);
      updateCount();
    }
  });
  versions.addEventListener("click", (event) => {
    const row = event.target.closest("li[data-version]");
    if (row) showChanges(Number(row.dataset.version)).catch((error) => FD.toast(error.message));
  });
  older.addEventListener("click", async () => {
    const last = versions.lastElementChild;
    try {
      const page = await FD.api("GET", "/api/persona?before=" + last.dataset.version);
      showVersions(page.versions, true);
      older.hidden = !page.has_more;
    } catch (error) {
      FD.toast(error.message);
    }
  });
  restore.addEventListener("click", async () => {
    const number = Number(restore.dataset.version);
    if (text.value.trim() !== saved && !(await FD.confirmed(FD.t("persona_discard")))) return;
    if (!(await FD.confirmed(FD.t("persona_confirm_restore", { n: number })))) return;
    try {
      const created = await FD.api("POST", `/api/persona/versions/${number}/restore`);
      FD.toast(FD.t("persona_restored", { old: number, n: created.version }));
      await load(created.version);
    } catch (error) {
      FD.toast(error.message);
    }
  });
  /* --- the test chat: the prompt as it is now, saved or not; nothing is kept ---------------------- */

  const chat = document.getElementById("try-chat");
  const tryForm = document.getElementById("try-form");
  const reset = document.getElementById("try-reset");
  let turns = [];  // {author: "customer" | "assistant", text}, oldest first

  function bubble(kind, body, meta) {
    const item = FD.el("li", { class: "msg " + kind });
    if (typeof body === "string") item.textContent = body; else item.append(body);
    if (meta) item.append(FD.el("div", { class: "meta" }, meta));
    chat.append(item);
    item.scrollIntoView({ block: "nearest" });
    return item;
  }

  function answerMeta(tried) {
    const source = tried.source === "ai"
      ? FD.t("ai_meta", { model: tried.model, tokens_in: tried.tokens_in, tokens_out: tried.tokens_out,
                          cost: tried.cost.toFixed(4) })
      : FD.t(tried.source === "knowledge" ? "from_kb" : "no_answer");
    return source + (tried.source === "ai" && tried.handoff_reason ? " · " + FD.t("would_hand_off") : "");
  }

  tryForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = tryForm.elements.question;
    const question = input.value.trim();
    if (!question) return;
    const button = tryForm.querySelector("button");
    button.disabled = true;
    bubble("customer", question);
    input.value = "";
    const waiting = bubble("system", FD.t("persona_thinking"));
    try {
      const tried = await FD.api("POST", "/api/persona/try",
        { question, text: text.value, earlier: turns.slice(-20) });
      waiting.remove();
      const answer = FD.el("div", {});
      answer.innerHTML = tried.html;  // the server's safe Telegram HTML, as in the knowledge page's "try it"
      bubble("ai", answer, answerMeta(tried));
      turns.push({ author: "customer", text: question }, { author: "assistant", text: (tried.text || "…").slice(0, 4000) });
      reset.hidden = false;
    } catch (error) {
      waiting.remove();
      FD.toast(error.message);
      input.value = question;
      chat.lastElementChild.remove();
    } finally {
      button.disabled = false;
      input.focus();
    }
  });
  reset.addEventListener("click", () => {
    turns = [];
    chat.replaceChildren();
    reset.hidden = true;
  });

  window.addEventListener("beforeunload", (event) => {
    if (overview && text.value.trim() !== saved) event.preventDefault();
  });
  await load(null);
});
