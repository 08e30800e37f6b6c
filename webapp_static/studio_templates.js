/* The prompt studio's template library: search as you type, tags, built-in and own templates, a
   template read in full, one's own created, changed and deleted, and "use this template".
   Highlights come from the server as escaped HTML with <mark> around matches; everything else is
   shown with textContent. */
"use strict";

FD.start(async (me) => {
  const filters = document.getElementById("filters");
  const results = document.getElementById("results");
  const more = document.getElementById("more");
  const chips = document.getElementById("tags");
  const viewer = document.getElementById("viewer");
  const editor = document.getElementById("editor");
  const editorError = document.getElementById("editor-error");
  let tag = "";
  let nextOffset = null;
  let searches = 0;  // answers to an older search are dropped
  let shown = null;  // the template in the viewer

  filters.elements.locale.value = me.locale;

  function params() {
    const query = new URLSearchParams({ limit: "20", scope: filters.elements.scope.value });
    const q = filters.elements.q.value;
    if (q.trim()) query.set("q", q);
    if (filters.elements.locale.value) query.set("locale", filters.elements.locale.value);
    if (tag) query.set("tag", tag);
    return query;
  }

  function row(hit) {
    const badges = FD.el("span", { class: "badges" },
      hit.mine ? FD.el("span", { class: "badge assigned" }, FD.t("tpl_mine")) : null,
      hit.shipped ? FD.el("span", { class: "badge" }, FD.t("tpl_builtin")) : null,
      hit.locale !== me.locale ? FD.el("span", { class: "badge" }, hit.locale.toUpperCase()) : null);
    const link = FD.el("a", { href: "?open=" + hit.id },
      FD.el("span", { class: "name", html: hit.title_html }), badges,
      hit.description ? FD.el("span", { class: "description", html: hit.description_html }) : null,
      FD.el("span", { class: "excerpt", html: hit.snippet_html }));
    link.addEventListener("click", (event) => {
      event.preventDefault();
      open(hit.id).catch((error) => FD.toast(error.message));
    });
    return FD.el("li", { "data-id": hit.id }, link);
  }

  async function load(append) {
    const number = ++searches;
    const query = params();
    if (append && nextOffset !== null) query.set("offset", String(nextOffset));
    const page = await FD.api("GET", "/api/studio/templates?" + query);
    if (number !== searches) return;
    if (!append) results.replaceChildren();
    for (const hit of page.templates) results.append(row(hit));
    nextOffset = page.next_offset;
    more.hidden = !page.has_more;
    const searching = query.has("q");
    document.getElementById("heading").textContent = FD.t(searching ? "tpl_best_matches"
      : filters.elements.scope.value === "mine" ? "tpl_newest" : "tpl_most_used");
    FD.status(results.children.length ? "" : FD.t(searching || tag ? "tpl_none"
      : filters.elements.scope.value === "mine" ? "tpl_none_mine" : "tpl_none"));
  }

  async function loadTags() {
    const query = new URLSearchParams({ scope: filters.elements.scope.value });
    if (filters.elements.locale.value) query.set("locale", filters.elements.locale.value);
    const found = (await FD.api("GET", "/api/studio/templates/tags?" + query)).tags;
    if (tag && !found.some((item) => item.tag === tag)) tag = "";
    chips.replaceChildren(...found.slice(0, 16).map((item) => {
      const chip = FD.el("button", { type: "button", class: "chip", "aria-pressed": String(item.tag === tag),
                                     "data-tag": item.tag }, item.tag);
      chip.addEventListener("click", () => {
        tag = tag === item.tag ? "" : item.tag;
        for (const other of chips.children) other.setAttribute("aria-pressed", String(other.dataset.tag === tag));
        load(false).catch((error) => FD.toast(error.message));
      });
      return chip;
    }));
  }

  /* The tags first: a tag no longer offered is no longer applied. */
  async function refresh() {
    await loadTags();
    await load(false);
  }

  async function open(id) {
    const template = await FD.api("GET", `/api/studio/templates/${id}`);
    shown = template;
    editor.hidden = true;
    document.getElementById("viewer-title").textContent = template.title;
    const description = document.getElementById("viewer-description");
    description.textContent = template.description;
    description.hidden = !template.description;
    const meta = [template.tags.join(", "), FD.t("tpl_uses", { count: template.uses })];
    if (template.variables.length) meta.push(FD.t("tpl_variables", { names: template.variables.join(", ") }));
    document.getElementById("viewer-meta").textContent = meta.filter(Boolean).join(" · ");
    document.getElementById("viewer-body").textContent = template.body;
    document.getElementById("edit").hidden = !template.mine;
    document.getElementById("delete").hidden = !template.mine;
    viewer.hidden = false;
    viewer.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function startEditing(template, copy) {
    editor.dataset.id = template && !copy ? template.id : "";
    editor.elements.title.value = template ? (copy ? FD.t("tpl_copy_of", { title: template.title }) : template.title) : "";
    editor.elements.description.value = template ? template.description : "";
    editor.elements.body.value = template ? template.body : "";
    editor.elements.tags.value = template ? template.tags.join(", ") : "";
    editor.elements.locale.value = template ? template.locale : me.locale;
    document.getElementById("editor-title").textContent = FD.t(editor.dataset.id ? "tpl_edit" : "tpl_new");
    editorError.hidden = true;
    viewer.hidden = true;
    editor.hidden = false;
    editor.scrollIntoView({ behavior: "smooth", block: "start" });
    editor.elements.title.focus();
  }

  editor.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = editor.dataset.id;
    const body = { title: editor.elements.title.value, description: editor.elements.description.value,
                   body: editor.elements.body.value, locale: editor.elements.locale.value,
                   tags: editor.elements.tags.value.split(",").map((part) => part.trim()).filter(Boolean) };
    try {
      const saved = await FD.api(id ? "PUT" : "POST", id ? `/api/studio/templates/${id}` : "/api/studio/templates", body);
      FD.toast(FD.t("saved"));
      await Promise.all([open(saved.id), refresh()]);
    } catch (error) {
      editorError.textContent = error.message;
      editorError.hidden = false;
    }
  });
  document.getElementById("editor-cancel").addEventListener("click", () => {
    editor.hidden = true;
    if (shown) viewer.hidden = false;
  });
  document.getElementById("new").addEventListener("click", () => startEditing(null, false));
  document.getElementById("copy").addEventListener("click", () => startEditing(shown, true));
  document.getElementById("edit").addEventListener("click", () => startEditing(shown, false));
  document.getElementById("viewer-close").addEventListener("click", () => { viewer.hidden = true; shown = null; });
  document.getElementById("delete").addEventListener("click", async () => {
    if (!shown || !(await FD.confirmed(FD.t("tpl_confirm_delete")))) return;
    try {
      await FD.api("DELETE", `/api/studio/templates/${shown.id}`);
      viewer.hidden = true;
      shown = null;
      FD.toast(FD.t("tpl_deleted"));
      await refresh();
    } catch (error) { FD.toast(error.message); }
  });
  document.getElementById("use").addEventListener("click", async (event) => {
    if (!shown) return;
    event.target.disabled = true;
    try {
      const used = await FD.api("POST", `/api/studio/templates/${shown.id}/use`, {});
      location.href = used.url;
    } catch (error) {
      FD.toast(error.message);
      event.target.disabled = false;
    }
  });

  let typing = null;
  filters.elements.q.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => load(false).catch((error) => FD.toast(error.message)), 200);
  });
  filters.addEventListener("change", (event) => {
    if (event.target.name === "q") return;
    refresh().catch((error) => FD.toast(error.message));
  });
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(typing);
    load(false).catch((error) => FD.toast(error.message));
  });
  more.addEventListener("click", () => load(true).catch((error) => FD.toast(error.message)));

  const wanted = new URLSearchParams(location.search).get("open");
  await Promise.all([refresh(), wanted && /^\d+$/.test(wanted) ? open(wanted).catch((error) => FD.toast(error.message)) : null]);
});
