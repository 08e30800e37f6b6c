/* The knowledge-base editor: search, add, edit, switch off, delete, import/export, try it, suggestions;
   documents and websites are knowledge_sources.js's. */
"use strict";

FD.start(async (me) => {
  if (!FD.isStaff(me)) { location.replace("/app/"); return; }
  const list = document.getElementById("items");
  const more = document.getElementById("more");
  const filters = document.getElementById("filters");
  const editor = document.getElementById("editor");
  const editorError = document.getElementById("editor-error");
  let cursor = null;

  function itemRow(item) {
    const toggle = FD.el("input", { type: "checkbox", "aria-label": FD.t("enabled"), checked: item.enabled });
    toggle.addEventListener("change", async () => {
      try {
        await FD.api("PATCH", `/api/knowledge/${item.id}`, { enabled: toggle.checked });
        row.classList.toggle("off", !toggle.checked);
      } catch (error) { toggle.checked = !toggle.checked; FD.toast(error.message); }
    });
    const edit = FD.el("button", { type: "button", class: "link" }, FD.t("edit"));
    edit.addEventListener("click", () => startEditing(item));
    const remove = FD.el("button", { type: "button", class: "link danger-text" }, FD.t("delete"));
    remove.addEventListener("click", async () => {
      if (!(await FD.confirmed(FD.t("confirm_delete_item")))) return;
      try { await FD.api("DELETE", `/api/knowledge/${item.id}`); row.remove(); }
      catch (error) { FD.toast(error.message); }
    });
    const row = FD.el("li", { "data-id": item.id, class: item.enabled ? "" : "off" },
      FD.el("div", { class: "item" },
        FD.el("div", { class: "question" }, item.question),
        FD.el("div", { class: "answer" }, item.answer),
        FD.el("div", { class: "muted small" }, [item.tags, FD.t("hits", { count: item.hit_count })].filter(Boolean).join(" · ")),
        FD.el("div", { class: "row tools" }, FD.el("label", { class: "switch" }, toggle, FD.t("enabled")), edit, remove)));
    return row;
  }

  async function load(append) {
    const data = new FormData(filters);
    const query = new URLSearchParams({ limit: "30" });
    if (data.get("q")) query.set("q", data.get("q"));
    if (data.get("enabled")) query.set("enabled", data.get("enabled"));
    if (append && cursor) query.set("cursor", cursor);
    const page = await FD.api("GET", "/api/knowledge?" + query);
    if (!append) list.replaceChildren();
    for (const item of page.items) list.append(itemRow(item));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    document.getElementById("total").textContent = FD.t("items_total", { count: page.total });
  }

  function startEditing(item) {
    editor.elements.id.value = item ? item.id : "";
    editor.elements.question.value = item ? item.question : "";
    editor.elements.answer.value = item ? item.answer : "";
    editor.elements.tags.value = item ? item.tags : "";
    document.getElementById("editor-title").textContent = FD.t(item && item.id ? "edit_item" : "new_item");
    document.getElementById("cancel").hidden = !(item && item.id);
    editorError.hidden = true;
    editor.scrollIntoView({ behavior: "smooth", block: "start" });
    editor.elements.question.focus();
  }

  editor.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = editor.elements.id.value;
    const body = { question: editor.elements.question.value, answer: editor.elements.answer.value,
                   tags: editor.elements.tags.value };
    try {
      await FD.api(id ? "PATCH" : "POST", id ? `/api/knowledge/${id}` : "/api/knowledge", body);
      editor.reset();
      startEditing(null);
      FD.toast(FD.t("saved"));
      await Promise.all([load(false), loadSuggestions()]);
    } catch (error) {
      editorError.textContent = error.message;
      editorError.hidden = false;
    }
  });
  document.getElementById("cancel").addEventListener("click", () => { editor.reset(); startEditing(null); });

  async function loadSuggestions() {
    const found = (await FD.api("GET", "/api/knowledge/suggestions")).suggestions;
    const box = document.getElementById("suggestions");
    box.replaceChildren(...found.map((suggestion) => {
      const add = FD.el("button", { type: "button", class: "secondary" }, FD.t("add_answer"));
      add.addEventListener("click", () => startEditing({ id: "", question: suggestion.question, answer: "", tags: "" }));
      const dismiss = FD.el("button", { type: "button", class: "link" }, FD.t("dismiss"));
      const row = FD.el("li", {}, FD.el("div", { class: "item" },
        FD.el("div", { class: "question" }, suggestion.question),
        FD.el("div", { class: "muted small" }, FD.t("asked_times", { count: suggestion.count })),
        FD.el("div", { class: "row tools" }, add, dismiss)));
      dismiss.addEventListener("click", async () => {
        try { await FD.api("POST", `/api/knowledge/suggestions/${suggestion.key}/dismiss`); row.remove(); }
        catch (error) { FD.toast(error.message); }
      });
      return row;
    }));
    document.getElementById("suggestions-card").hidden = !found.length;
  }

  document.getElementById("try-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = event.target.elements.question.value;
    const button = event.target.querySelector("button");
    button.disabled = true;
    try {
      const tried = await FD.api("POST", "/api/knowledge/try", { question });
      document.getElementById("try-answer").innerHTML = tried.html;  // the server's safe Telegram HTML
      const source = tried.source === "ai"
        ? FD.t("ai_meta", { model: tried.model, tokens_in: tried.tokens_in, tokens_out: tried.tokens_out, cost: tried.cost.toFixed(4) })
        : FD.t(tried.source === "knowledge" ? "from_kb" : "no_answer");
      document.getElementById("try-source").textContent = source + (tried.handoff_reason ? " · " + FD.t("would_hand_off") : "");
      document.getElementById("try-items").replaceChildren(...tried.items.map((item) =>
        FD.el("li", {}, "📚 " + item.question)));
      document.getElementById("try-result").hidden = false;
    } catch (error) {
      FD.toast(error.message);
    } finally {
      button.disabled = false;
    }
  });

  document.getElementById("import").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      const report = await FD.api("POST", "/api/knowledge/import", { filename: file.name, text: await file.text() });
      FD.toast(FD.t("imported", report));
      await load(false);
    } catch (error) {
      FD.toast(error.message);
    } finally {
      event.target.value = "";
    }
  });

  for (const button of document.querySelectorAll("[data-export]")) {
    button.addEventListener("click", async () => {
      const format = button.dataset.export;
      const response = await fetch(`/api/knowledge/export?format=${format}`,
                                   { headers: FD.headers("GET"), credentials: "same-origin" });
      if (!response.ok) { FD.toast((await response.json()).error.message); return; }
      const link = FD.el("a", { href: URL.createObjectURL(await response.blob()), download: `knowledge.${format}` });
      document.body.append(link);
      link.click();
      link.remove();
    });
  }

  let typing = null;
  filters.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => load(false).catch((e) => FD.toast(e.message)), 250); });
  filters.addEventListener("submit", (event) => event.preventDefault());
  more.addEventListener("click", () => load(true).catch((error) => FD.toast(error.message)));
  await Promise.all([load(false), loadSuggestions(), FDSources.start()]);
});
