/* The prompt studio's editor: context blocks and prompt blocks, the live compiled preview, autosave
   that survives a lost connection, runs streamed as NDJSON (one model or two side by side), the
   prompt's versions (labels, diff, restore) and the project's run history.

   Autosave: every edit goes into `doc` and, at once, into localStorage (with the revision it is
   based on); a PUT follows ~800 ms after the last edit. Without a connection the local copy waits
   and is sent when the browser is online again (or on the next visit). A save based on an older
   revision is refused by the server (409 "stale"): the person chooses whose text wins. */
"use strict";

FD.start(async (me) => {
  const projectId = Number(new URLSearchParams(location.search).get("id"));
  if (!Number.isInteger(projectId) || projectId <= 0) { FD.status(FD.t("studio_no_project")); return; }
  const $ = (id) => document.getElementById(id);
  const storageKey = `fd-studio:${me.id}:${projectId}`;
  const SAVE_DELAY = 800;
  const COMPILE_DELAY = 300;
  const RETRY_EVERY = 15000;

  let limits = { max_blocks: 50, max_items: 500 };
  let projectName = "";
  let doc = null;          // the document as edited here
  let base = 0;            // the server's revision `doc` is based on
  let dirty = false;       // edits the server has not got yet
  let edits = 0;           // counts edits, to tell whether one came in while a save was under way
  let saving = null;       // the save under way (a promise)
  let saveTimer = null;
  let offline = false;     // the last attempt could not reach the server
  let retryable = false;   // the last refusal was the server's trouble (5xx): try again later
  let problem = "";        // why the last save was refused, shown as "Not saved: …"
  let conflict = null;     // {revision}: saved elsewhere, waiting for the person's choice
  let storedLocally = true;
  let activeId = null;     // the prompt block being edited
  let models = [];
  let versions = [];
  let chosenVersion = null;
  const stash = {};        // per block: values of variables the template stopped naming, in case they return
  const collapsed = new Set();  // context blocks folded away

  // --- the local copy --------------------------------------------------------------------------------

  function keepLocally() {
    try {
      if (dirty) localStorage.setItem(storageKey, JSON.stringify({ base, doc, name: projectName, at: Date.now() }));
      else localStorage.removeItem(storageKey);
      storedLocally = true;
    } catch (error) {
      storedLocally = false;  // storage full or switched off: only this page holds the changes now
    }
  }

  function localCopy() {
    try {
      const copy = JSON.parse(localStorage.getItem(storageKey) || "null");
      return copy && copy.doc && Number.isInteger(copy.base) ? copy : null;
    } catch (error) {
      return null;
    }
  }

  function canonical(value) {
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    if (value && typeof value === "object") {
      return "{" + Object.keys(value).sort().map((key) => JSON.stringify(key) + ":" + canonical(value[key])).join(",") + "}";
    }
    return JSON.stringify(value);
  }

  // --- the save state ---------------------------------------------------------------------------------

  function showState() {
    const box = $("save-state");
    let state = "saved";
    let text = FD.t("saved");
    if (conflict) { state = "conflict"; text = FD.t("studio_state_conflict"); }
    else if (problem) { state = "error"; text = FD.t("studio_state_error", { reason: problem }); }
    else if (dirty && (offline || !navigator.onLine)) {
      state = "offline"; text = FD.t(storedLocally ? "studio_state_offline" : "studio_state_offline_unkept");
    } else if (dirty || saving) { state = "saving"; text = FD.t("studio_state_saving"); }
    box.dataset.state = state;
    box.textContent = text;
    $("conflict").hidden = !conflict;
  }

  function validate() {
    const seen = new Set();
    for (const block of doc.context_blocks) {
      const name = block.name.trim();
      if (!name) return FD.t("studio_need_context_name");
      if (/[{}@]/.test(name)) return FD.t("studio_bad_context_name", { name });
      if (seen.has(name.toLowerCase())) return FD.t("studio_context_name_twice", { name });
      seen.add(name.toLowerCase());
    }
    if (doc.prompt_blocks.some((block) => !block.name.trim())) return FD.t("studio_need_prompt_name");
    return "";
  }

  function schedule(delay) {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(() => { save(); }, delay);
  }

  /* Every edit: remember it here and on this device at once, save to the server a little later. */
  function changed(recompile = true) {
    edits += 1;
    dirty = true;
    problem = "";
    keepLocally();
    schedule(SAVE_DELAY);
    if (recompile) scheduleCompile();
    showState();
  }

  function save() {
    clearTimeout(saveTimer);
    if (saving) return saving;
    if (!dirty || conflict) { showState(); return Promise.resolve(); }
    const invalid = validate();
    if (invalid) { problem = invalid; showState(); return Promise.resolve(); }
    if (!navigator.onLine) { offline = true; showState(); return Promise.resolve(); }
    const sent = edits;
    saving = (async () => {
      try {
        const saved = await FD.api("PUT", `/api/studio/projects/${projectId}`, { revision: base, data: doc });
        base = saved.revision;
        offline = false; retryable = false; problem = "";
        if (edits === sent) dirty = false;
        keepLocally();
      } catch (error) {
        offline = error.status === 0;
        retryable = error.status >= 500;
        if (error.code === "stale") {
          conflict = { revision: error.details && error.details.revision };
        } else if (!offline) {
          problem = error.message;
        }
      } finally {
        saving = null;
      }
      if (dirty && !conflict && !problem && !offline) schedule(SAVE_DELAY);  // typed while saving
      showState();
    })();
    showState();
    return saving;
  }

  /* Saves what is pending now; true when the server has all of it. */
  async function flush() {
    if (saving) await saving;
    if (dirty) await save();
    return !dirty && !conflict;
  }

  window.addEventListener("online", () => { offline = false; if (dirty) save(); scheduleCompile(); showState(); });
  window.addEventListener("offline", showState);
  setInterval(() => { if (dirty && !saving && !conflict && (offline || retryable)) save(); }, RETRY_EVERY);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden" && dirty) save(); });
  window.addEventListener("beforeunload", (event) => { if (dirty && !storedLocally) event.preventDefault(); });

  $("take-theirs").addEventListener("click", async () => {
    try {
      adopt(await FD.api("GET", `/api/studio/projects/${projectId}`));
      FD.toast(FD.t("studio_loaded_latest"));
    } catch (error) {
      FD.toast(error.message);
    }
  });
  $("keep-mine").addEventListener("click", async () => {
    let revision = conflict && conflict.revision;
    try {
      if (!revision) revision = (await FD.api("GET", `/api/studio/projects/${projectId}`)).revision;
    } catch (error) {
      FD.toast(error.message);
      return;
    }
    base = revision;
    conflict = null;
    dirty = true;
    keepLocally();
    await save();
  });

  // --- the document ---------------------------------------------------------------------------------

  function newKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(6));
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
  }

  function freeName(stem, taken) {
    const names = new Set(taken.map((name) => name.trim().toLowerCase()));
    if (!names.has(stem.toLowerCase())) return stem;
    for (let n = 2; ; n += 1) if (!names.has(`${stem} ${n}`.toLowerCase())) return `${stem} ${n}`;
  }

  function active() { return doc.prompt_blocks.find((block) => block.id === activeId) || null; }
  function contextBlock(id) { return doc.context_blocks.find((block) => block.id === id); }

  function moveIn(list, index, by) {
    const to = index + by;
    if (to < 0 || to >= list.length) return false;
    list.splice(to, 0, list.splice(index, 1)[0]);
    return true;
  }

  /* The server's project replaces what is shown (first load, "load the latest", a restore). */
  function adopt(project) {
    projectName = project.name;
    limits = project.limits || limits;
    doc = project.data;
    base = project.revision;
    dirty = false; conflict = null; problem = ""; offline = false; retryable = false;
    keepLocally();
    renderAll();
  }

  // --- context blocks -------------------------------------------------------------------------------

  const contextBox = $("context-blocks");

  function selectedCount(block) { return block.items.filter((item) => item.selected).length; }

  function moveButtons(kind, label, index, count) {
    return FD.el("span", { class: "moves" },
      FD.el("button", { type: "button", class: "link", "data-act": kind + "-up", disabled: index === 0,
                        "aria-label": FD.t("studio_move_up_named", { name: label }) }, "↑"),
      FD.el("button", { type: "button", class: "link", "data-act": kind + "-down", disabled: index === count - 1,
                        "aria-label": FD.t("studio_move_down_named", { name: label }) }, "↓"),
      FD.el("button", { type: "button", class: "link danger-text", "data-act": kind + "-delete",
                        "aria-label": FD.t("studio_delete_named", { name: label }) }, "✕"));
  }

  function itemRow(block, item, index) {
    const label = item.title.trim() || FD.t("studio_item_n", { n: index + 1 });
    return FD.el("li", { class: "ctx-item" + (item.selected ? "" : " off"), "data-item": item.id },
      FD.el("div", { class: "item-head" },
        FD.el("input", { type: "checkbox", "data-field": "selected", checked: item.selected,
                         "aria-label": FD.t("studio_use_item", { name: label }) }),
        FD.el("input", { type: "text", "data-field": "title", value: item.title, maxlength: "200",
                         placeholder: FD.t("studio_item_title"), "aria-label": FD.t("studio_item_title_of", { n: index + 1 }) }),
        moveButtons("item", label, index, block.items.length)),
      (() => {
        const text = FD.el("textarea", { "data-field": "text", rows: "3", maxlength: "100000",
                                         placeholder: FD.t("studio_item_text"),
                                         "aria-label": FD.t("studio_item_text_of", { n: index + 1 }) });
        text.value = item.text;
        return text;
      })());
  }

  /* The item's controls are named after its title, which the person may be typing. */
  function relabelItem(row, item, index) {
    const name = item.title.trim() || FD.t("studio_item_n", { n: index + 1 });
    row.querySelector('[data-field="selected"]').setAttribute("aria-label", FD.t("studio_use_item", { name }));
    for (const [act, key] of [["item-up", "studio_move_up_named"], ["item-down", "studio_move_down_named"],
                              ["item-delete", "studio_delete_named"]]) {
      row.querySelector(`[data-act="${act}"]`).setAttribute("aria-label", FD.t(key, { name }));
    }
  }

  function contextCard(block, index) {
    const name = block.name;
    const items = FD.el("ol", { class: "ctx-items" }, ...block.items.map((item, i) => itemRow(block, item, i)));
    const details = FD.el("details", { class: "ctx", "data-block": block.id, open: !collapsed.has(block.id) },
      FD.el("summary", {},
        FD.el("span", { class: "ctx-title" }, name || "…"),
        FD.el("span", { class: "badge", "data-count": "" },
              FD.t("studio_selected_of", { selected: selectedCount(block), total: block.items.length }))),
      FD.el("div", { class: "row ctx-head" },
        FD.el("label", { class: "grow" }, FD.el("span", { class: "field-label" }, FD.t("studio_context_name")),
          FD.el("input", { type: "text", "data-field": "name", value: name, maxlength: "60", autocomplete: "off" })),
        moveButtons("block", name, index, doc.context_blocks.length)),
      FD.el("p", { class: "hint ref" }, FD.t("studio_reference_is", { ref: `{{@${name.trim()}}}` })),
      items,
      FD.el("button", { type: "button", class: "secondary small-button", "data-act": "item-add",
                        disabled: block.items.length >= limits.max_items }, "+ " + FD.t("studio_item")));
    details.addEventListener("toggle", () => {
      if (details.open) collapsed.delete(block.id); else collapsed.add(block.id);
    });
    return details;
  }

  /* Draws the context blocks again, then focuses the first of `focus` (selectors) that exists. */
  function renderContext(...focus) {
    contextBox.replaceChildren(...doc.context_blocks.map(contextCard));
    $("add-context").disabled = doc.context_blocks.length >= limits.max_blocks;
    renderRefs();
    for (const selector of focus) {
      const target = contextBox.querySelector(selector);
      if (target) { target.focus(); break; }
    }
  }

  function refreshContextHeader(card, block) {
    card.querySelector(".ctx-title").textContent = block.name || "…";
    card.querySelector("[data-count]").textContent =
      FD.t("studio_selected_of", { selected: selectedCount(block), total: block.items.length });
    card.querySelector(".ref").textContent = FD.t("studio_reference_is", { ref: `{{@${block.name.trim()}}}` });
    for (const [act, key] of [["block-up", "studio_move_up_named"], ["block-down", "studio_move_down_named"],
                              ["block-delete", "studio_delete_named"]]) {
      card.querySelector(`.ctx-head [data-act="${act}"]`).setAttribute("aria-label", FD.t(key, { name: block.name }));
    }
  }

  contextBox.addEventListener("input", (event) => {
    const field = event.target.dataset.field;
    const card = event.target.closest("[data-block]");
    if (!field || !card) return;
    const block = contextBlock(card.dataset.block);
    const row = event.target.closest("[data-item]");
    if (row) {
      const item = block.items.find((candidate) => candidate.id === row.dataset.item);
      if (field === "selected") {
        item.selected = event.target.checked;
        row.classList.toggle("off", !item.selected);
      } else {
        item[field] = event.target.value;
        if (field === "title") relabelItem(row, item, block.items.indexOf(item));
      }
    } else if (field === "name") {
      block.name = event.target.value;
      event.target.setAttribute("aria-invalid", String(!block.name.trim() || /[{}@]/.test(block.name)));
      renderRefs();
    }
    refreshContextHeader(card, block);
    changed();
  });

  contextBox.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const card = button.closest("[data-block]");
    const blockIndex = doc.context_blocks.findIndex((block) => block.id === card.dataset.block);
    const block = doc.context_blocks[blockIndex];
    const row = button.closest("[data-item]");
    const itemIndex = row ? block.items.findIndex((item) => item.id === row.dataset.item) : -1;
    const item = row ? block.items[itemIndex] : null;
    const where = (selector) => `[data-block="${block.id}"] ${selector}`;
    switch (button.dataset.act) {
      case "item-add": {
        const created = { id: newKey(), title: "", text: "", selected: true };
        block.items.push(created);
        changed();
        renderContext(where(`[data-item="${created.id}"] [data-field="title"]`));
        break;
      }
      case "item-up": case "item-down": {
        const by = button.dataset.act === "item-up" ? -1 : 1;
        if (moveIn(block.items, itemIndex, by)) {
          changed();
          renderContext(where(`[data-item="${item.id}"] [data-act="${button.dataset.act}"]:not(:disabled)`),
                        where(`[data-item="${item.id}"] [data-field="title"]`));
        }
        break;
      }
      case "item-delete": {
        const hasText = item.title.trim() || item.text.trim();
        if (hasText && !(await FD.confirmed(FD.t("studio_confirm_delete_item",
                                                 { name: item.title.trim() || FD.t("studio_item_n", { n: itemIndex + 1 }) })))) return;
        block.items.splice(itemIndex, 1);
        changed();
        renderContext(where("[data-act=item-add]"));
        break;
      }
      case "block-up": case "block-down": {
        if (moveIn(doc.context_blocks, blockIndex, button.dataset.act === "block-up" ? -1 : 1)) {
          changed();
          renderContext(where(`.ctx-head [data-act="${button.dataset.act}"]:not(:disabled)`),
                        where(".ctx-head [data-act^=block]:not(:disabled)"));
        }
        break;
      }
      case "block-delete": {
        if (!(await FD.confirmed(FD.t("studio_confirm_delete_context", { name: block.name, count: block.items.length })))) return;
        doc.context_blocks.splice(blockIndex, 1);
        collapsed.delete(block.id);
        changed();
        renderContext();
        $("add-context").focus();
        break;
      }
      default: break;
    }
  });

  $("add-context").addEventListener("click", () => {
    const block = { id: newKey(), name: freeName(FD.t("studio_default_context"), doc.context_blocks.map((b) => b.name)),
                    items: [{ id: newKey(), title: "", text: "", selected: true }] };
    doc.context_blocks.push(block);
    changed();
    renderContext(`[data-block="${block.id}"] [data-field="name"]`);
  });

  // --- prompt blocks ----------------------------------------------------------------------------------

  const template = $("template");

  function renderTabs() {
    const tabs = $("prompt-tabs");
    tabs.replaceChildren(...doc.prompt_blocks.map((block) => FD.el("label", {},
      FD.el("input", { type: "radio", name: "prompt-block", value: block.id, checked: block.id === activeId }),
      FD.el("span", {}, block.name.trim() || "…"))));
    $("add-prompt").disabled = doc.prompt_blocks.length >= limits.max_blocks;
  }

  function renderRefs() {
    const refs = doc.context_blocks.filter((block) => block.name.trim() && !/[{}@]/.test(block.name));
    $("refs").replaceChildren(...refs.map((block) => FD.el("button", {
      type: "button", class: "chip-button", "data-ref": block.name.trim(),
      "aria-label": FD.t("studio_insert_named", { name: block.name.trim() }) }, `{{@${block.name.trim()}}}`)));
    $("insert-refs").hidden = !refs.length || !active();
  }

  function modelLabel(option) {
    return option.own_key ? FD.t("studio_model_own", { model: option.model, key: option.provider })
      : `${option.model} · ${option.provider}`;
  }

  function modelName(id) {
    const option = models.find((candidate) => candidate.id === id);
    return option ? modelLabel(option) : id;
  }

  function fillModels(select, chosen) {
    const options = models.map((option) => FD.el("option", { value: option.id }, modelLabel(option)));
    if (chosen && !models.some((option) => option.id === chosen)) {
      options.unshift(FD.el("option", { value: chosen }, FD.t("studio_model_gone", { model: chosen })));
    }
    if (!options.length) options.push(FD.el("option", { value: "" }, FD.t("studio_no_models")));
    select.replaceChildren(...options);
    if (chosen) select.value = chosen;
  }

  function renderEditor() {
    const block = active();
    $("prompt-editor").hidden = !block;
    $("preview-card").hidden = !block;
    $("run-card").hidden = !block;
    $("versions-card").hidden = !block;
    if (!block) return;
    const index = doc.prompt_blocks.indexOf(block);
    $("block-name").value = block.name;
    $("block-name").removeAttribute("aria-invalid");
    $("block-up").disabled = index === 0;
    $("block-down").disabled = index === doc.prompt_blocks.length - 1;
    template.value = block.template;
    fillModels($("model"), block.model);
    $("variables").replaceChildren();  // another block's fields must not be reused
    renderVariables(block, Object.keys(block.variables));
    renderRefs();
  }

  function select(blockId) {
    activeId = blockId;
    chosenVersion = null;
    renderTabs();
    renderEditor();
    clearCompiled();
    scheduleCompile(0);
    loadVersions();
    for (const pane of panes) resetPane(pane);
  }

  $("prompt-tabs").addEventListener("change", (event) => { if (event.target.name === "prompt-block") select(event.target.value); });
  $("add-prompt").addEventListener("click", () => {
    const block = { id: newKey(), name: freeName(FD.t("studio_default_prompt"), doc.prompt_blocks.map((b) => b.name)),
                    template: "", variables: {}, model: active() ? active().model : "" };
    doc.prompt_blocks.push(block);
    changed(false);
    select(block.id);
    $("block-name").focus();
    $("block-name").select();
  });
  $("block-name").addEventListener("input", (event) => {
    active().name = event.target.value;
    event.target.setAttribute("aria-invalid", String(!event.target.value.trim()));
    const tab = $("prompt-tabs").querySelector(`input[value="${activeId}"] + span`);
    if (tab) tab.textContent = event.target.value.trim() || "…";
    changed(false);
  });
  for (const [id, by] of [["block-up", -1], ["block-down", 1]]) {
    $(id).addEventListener("click", () => {
      if (!moveIn(doc.prompt_blocks, doc.prompt_blocks.indexOf(active()), by)) return;
      changed(false);
      renderTabs();
      renderEditor();
      const button = $(id).disabled ? $(by < 0 ? "block-down" : "block-up") : $(id);
      button.focus();
    });
  }
  $("block-delete").addEventListener("click", async () => {
    const block = active();
    if (!(await FD.confirmed(FD.t("studio_confirm_delete_prompt", { name: block.name })))) return;
    const index = doc.prompt_blocks.indexOf(block);
    doc.prompt_blocks.splice(index, 1);
    changed(false);
    const next = doc.prompt_blocks[Math.min(index, doc.prompt_blocks.length - 1)];
    select(next ? next.id : null);
    $("add-prompt").focus();
  });
  template.addEventListener("input", () => { active().template = template.value; changed(); });
  $("refs").addEventListener("click", (event) => {
    const button = event.target.closest("[data-ref]");
    if (!button) return;
    const reference = `{{@${button.dataset.ref}}}`;
    template.focus();
    template.setRangeText(reference, template.selectionStart, template.selectionEnd, "end");
    template.dispatchEvent(new Event("input", { bubbles: true }));
  });
  $("model").addEventListener("change", (event) => {
    active().model = event.target.value;
    changed();
    syncPaneModels();
  });

  /* One value field per variable the template names, kept (and focused) across redraws. */
  function renderVariables(block, names) {
    const box = $("variables");
    const shown = [...box.querySelectorAll("[data-var]")].map((field) => field.dataset.var);
    if (shown.length === names.length && shown.every((name, index) => name === names[index])) return;
    const fields = new Map([...box.querySelectorAll("[data-var]")].map((field) => [field.dataset.var, field]));
    const rows = names.map((name) => {
      let field = fields.get(name);
      if (!field) {
        field = FD.el("textarea", { "data-var": name, rows: "1", maxlength: "100000" });
        field.value = block.variables[name] || "";
      }
      return FD.el("label", { class: "field variable" },
        FD.el("span", {}, FD.el("code", {}, `{{${name}}}`)), field);
    });
    const focused = document.activeElement;
    box.replaceChildren(...(rows.length ? [FD.el("h3", {}, FD.t("studio_values"))] : []), ...rows);
    if (focused && box.contains(focused)) focused.focus();
  }

  $("variables").addEventListener("input", (event) => {
    const name = event.target.dataset.var;
    if (!name) return;
    active().variables[name] = event.target.value;
    event.target.classList.remove("missing");
    changed();
  });

  // --- the compiled preview --------------------------------------------------------------------------

  let compileTimer = null;
  let compileSeq = 0;

  function scheduleCompile(delay = COMPILE_DELAY) {
    clearTimeout(compileTimer);
    compileTimer = setTimeout(compile, delay);
  }

  function clearCompiled() {
    $("stats").textContent = "";
    $("problems").replaceChildren();
    $("preview").textContent = "";
    $("context-used").textContent = "";
    $("tokens-note").hidden = true;
  }

  async function compile() {
    const block = active();
    if (!block) return;
    const seq = ++compileSeq;
    const invalid = validate();
    if (invalid) { showCompileProblem(invalid); return; }
    const sentTemplate = block.template;
    try {
      const compiled = await FD.api("POST", `/api/studio/projects/${projectId}/compile`,
                                    { block_id: block.id, model: $("model").value || block.model, data: doc });
      if (seq !== compileSeq || active() !== block) return;
      $("preview-card").classList.remove("stale");
      showCompiled(block, compiled, block.template === sentTemplate);
    } catch (error) {
      if (seq !== compileSeq) return;
      showCompileProblem(error.status === 0 ? FD.t("studio_preview_offline") : error.message);
    }
  }

  function showCompileProblem(text) {
    $("preview-card").classList.add("stale");  // what is shown no longer matches the text
    $("problems").replaceChildren(FD.el("li", { class: "problem" }, text));
  }

  function problemItem(key, names) {
    return FD.el("li", { class: "problem", "data-problem": key }, FD.t("studio_problem_" + key, { names: names.join(", ") }));
  }

  function markedPreview(text, compiled) {
    const wrong = new Set([...compiled.missing, ...compiled.unknown_context.map((name) => "@" + name)]);
    const bad = new Set(compiled.bad_placeholders);
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(/\{\{\s*(@?)([^{}]*?)\s*\}\}/g)) {
      const name = match[1] + match[2];
      if (!wrong.has(name) && !bad.has(match[0])) continue;
      parts.push(text.slice(last, match.index), FD.el("mark", {}, match[0]));
      last = match.index + match[0].length;
    }
    parts.push(text.slice(last));
    return parts;
  }

  function showCompiled(block, compiled, current) {
    const tokens = FD.t("tokens_count", { count: compiled.tokens });
    const count = FD.el("span", { class: "tokens", title: compiled.tokens_exact
      ? FD.t("studio_tokens_exact", { encoding: compiled.encoding || "" }) : FD.t("studio_tokens_estimate"),
      "aria-describedby": compiled.tokens_exact ? null : "tokens-note" },
      compiled.tokens_exact ? tokens : "≈ " + tokens);
    $("stats").replaceChildren(FD.el("span", { class: "chars" }, FD.t("studio_chars", { count: compiled.chars })), " · ", count);
    $("tokens-note").hidden = compiled.tokens_exact;
    const problems = [];
    if (compiled.missing.length) problems.push(problemItem("missing", compiled.missing));
    if (compiled.unknown_context.length) problems.push(problemItem("unknown", compiled.unknown_context));
    if (compiled.bad_placeholders.length) problems.push(problemItem("bad", compiled.bad_placeholders));
    if (!problems.length && !compiled.text.trim()) problems.push(FD.el("li", { class: "problem" }, FD.t("studio_problem_empty")));
    if (!problems.length && !compiled.ready) problems.push(FD.el("li", { class: "problem" }, FD.t("studio_problem_long")));
    if (!problems.length) problems.push(FD.el("li", { class: "ready" }, FD.t("studio_ready")));
    $("problems").replaceChildren(...problems);
    $("context-used").textContent = compiled.context.length ? FD.t("studio_context_used", {
      blocks: compiled.context.map((used) => FD.t("studio_context_items", { name: used.block, count: used.items })).join(", ") }) : "";
    $("preview").replaceChildren(...markedPreview(compiled.text, compiled));
    if (!current) return;  // the template changed meanwhile: its own compile follows
    syncVariables(block, compiled.variables);
    for (const field of $("variables").querySelectorAll("[data-var]")) {
      field.classList.toggle("missing", compiled.missing.includes(field.dataset.var));
    }
  }

  /* The template decides which values the document keeps; a value whose variable went away is kept
     aside on this page, and comes back if the variable does (typing `{{nam` → `{{name}}`). */
  function syncVariables(block, names) {
    const kept = stash[block.id] || (stash[block.id] = {});
    let edited = false;
    let restored = false;
    for (const [name, value] of Object.entries(block.variables)) {
      if (names.includes(name)) continue;
      if (value.trim()) kept[name] = value;
      delete block.variables[name];
      edited = true;
    }
    for (const name of names) {
      if (!(name in block.variables) && kept[name]) {
        block.variables[name] = kept[name];
        delete kept[name];
        const field = $("variables").querySelector(`[data-var="${CSS.escape(name)}"]`);
        if (field) field.value = block.variables[name];
        edited = restored = true;
      }
    }
    renderVariables(block, names);
    if (edited) changed(restored);  // a value that came back changes the prompt
  }

  // --- runs ------------------------------------------------------------------------------------------

  const panes = [...document.querySelectorAll("#panes .pane")].map((root) => ({
    root, answer: root.querySelector(".answer"), meta: root.querySelector(".run-meta"),
    error: root.querySelector(".error"), model: root.querySelector(".pane-model"),
    version: root.querySelector(".pane-version"), controls: root.querySelector(".pane-controls") }));
  const compare = $("compare");

  function resetPane(pane) {
    pane.answer.textContent = "";
    pane.meta.replaceChildren();
    pane.error.hidden = true;
    pane.root.classList.remove("done", "failed");
  }

  function syncPaneModels() {
    const first = $("model").value;
    const other = (models.find((option) => option.id !== first) || { id: first }).id;
    fillModels(panes[0].model, panes[0].model.value || first);
    fillModels(panes[1].model, panes[1].model.value || other);
  }

  function versionName(version) {
    return FD.t("studio_version", { n: version.number }) + (version.labels.length ? ` (${version.labels.join(", ")})` : "");
  }

  function fillPaneVersions() {
    for (const pane of panes) {
      const chosen = pane.version.value;
      pane.version.replaceChildren(FD.el("option", { value: "" }, FD.t("studio_current_text")),
        ...versions.map((version) => FD.el("option", { value: version.id }, versionName(version))));
      if ([...pane.version.options].some((option) => option.value === chosen)) pane.version.value = chosen;
    }
  }

  compare.addEventListener("change", () => {
    const on = compare.checked;
    $("panes").classList.toggle("compare", on);
    panes[1].root.hidden = !on;
    for (const pane of panes) pane.controls.hidden = !on;
    if (on) { panes[0].model.value = $("model").value; syncPaneModels(); }
    $("run").textContent = FD.t(on ? "studio_run_both" : "studio_run");
  });

  function seconds(ms) {
    return (ms / 1000).toLocaleString(document.documentElement.lang, { maximumFractionDigits: ms < 10000 ? 2 : 1 })
      + "\u00a0" + FD.t("seconds_short");
  }

  function runFacts(run) {
    const facts = [];
    if (run.version) facts.push(FD.el("span", { class: "version" }, FD.t("studio_version", { n: run.version.number })));
    facts.push(FD.el("span", { class: "tokens" }, FD.t("ai_meta", {
      model: modelName(run.model), tokens_in: run.tokens_in, tokens_out: run.tokens_out, cost: run.cost.toFixed(4) })));
    if (run.latency_ms) facts.push(FD.el("span", { class: "latency" }, seconds(run.latency_ms)));
    return facts.flatMap((fact, index) => (index ? [" · ", fact] : [fact]));
  }

  async function runPane(pane, body) {
    resetPane(pane);
    pane.root.classList.add("running");
    pane.answer.setAttribute("aria-busy", "true");
    pane.meta.textContent = FD.t("studio_running");
    let finished = null;
    try {
      await FD.stream(`/api/studio/projects/${projectId}/runs`, body, (line) => {
        if (line.type === "run") {
          pane.meta.textContent = FD.t("studio_running_on", { model: modelName(line.run.model) });
        } else if (line.type === "delta") {
          pane.answer.append(line.text);
        } else if (line.type === "done") {
          finished = line.run;
        } else if (line.type === "error") {
          throw new FD.ApiError(500, line.code || "error", line.message || FD.t("studio_run_cut"));
        }
      });
      if (!finished) throw new FD.ApiError(0, "network", FD.t("studio_run_cut"));
      pane.answer.textContent = finished.answer;
      pane.meta.replaceChildren(...runFacts(finished));
      if (finished.status !== "ok") {
        pane.error.textContent = FD.t("studio_run_failed", { reason: finished.error || finished.status });
        pane.error.hidden = false;
      }
      pane.root.classList.add(finished.status === "ok" ? "done" : "failed");
    } catch (error) {
      pane.meta.textContent = "";
      pane.error.textContent = error.status === 0 && error.code === "network" && !pane.answer.textContent
        ? FD.t("studio_run_offline") : error.message;
      pane.error.hidden = false;
      pane.root.classList.add("failed");
    } finally {
      pane.root.classList.remove("running");
      pane.answer.setAttribute("aria-busy", "false");
    }
  }

  $("run").addEventListener("click", async () => {
    const block = active();
    const button = $("run");
    const used = compare.checked ? panes : [panes[0]];
    const bodies = used.map((pane) => {
      const version = compare.checked ? pane.version.value : "";
      const model = compare.checked ? pane.model.value : $("model").value;
      return version ? { version_id: Number(version), model } : { block_id: block.id, model };
    });
    button.disabled = true;
    try {
      if (bodies.some((body) => body.block_id) && !(await flush())) {
        const reason = conflict ? FD.t("studio_state_conflict") : problem || FD.t("studio_state_offline");
        for (const pane of used) {
          resetPane(pane);
          pane.error.textContent = FD.t("studio_run_unsaved", { reason });
          pane.error.hidden = false;
        }
        return;
      }
      await Promise.all(used.map((pane, index) => runPane(pane, bodies[index])));
    } finally {
      button.disabled = false;
    }
    await Promise.all([loadVersions(), loadRuns(false)]);
  });

  // --- versions --------------------------------------------------------------------------------------

  async function loadVersions() {
    const block = active();
    if (!block) return;
    let answer;
    try {
      answer = await FD.api("GET", `/api/studio/projects/${projectId}/versions?block_id=${encodeURIComponent(block.id)}`);
    } catch (error) {
      $("no-versions").hidden = false;
      $("no-versions").textContent = error.message;
      return;
    }
    if (active() !== block) return;
    versions = answer.versions;
    const list = $("versions");
    list.replaceChildren(...versions.map((version) => FD.el("li", { "data-version": version.id },
      FD.el("button", { type: "button", "aria-pressed": String(version.id === chosenVersion) },
        FD.el("span", { class: "name" }, FD.t("studio_version", { n: version.number })),
        FD.el("span", { class: "time" }, FD.when(version.created_at)),
        FD.el("span", { class: "preview" }, ...version.labels.map((label) => FD.el("span", { class: "badge label" }, label)),
              " ", version.template.replace(/\s+/g, " ").trim().slice(0, 160))))));
    $("no-versions").hidden = versions.length > 0;
    $("no-versions").textContent = FD.t("studio_no_versions");
    fillPaneVersions();
    if (chosenVersion && versions.some((version) => version.id === chosenVersion)) await showVersion(chosenVersion);
    else { chosenVersion = null; $("version-detail").hidden = true; }
  }

  function lineItem(line) {
    const sign = { same: " ", added: "+", removed: "−" }[line.kind];
    const body = FD.el("span", { class: "text" });
    if (line.segments.length) {
      for (const segment of line.segments) body.append(segment.changed ? FD.el("mark", {}, segment.text) : segment.text);
    } else {
      body.textContent = line.text;
    }
    if (!line.text) body.textContent = "\u00a0";
    return FD.el("li", { class: line.kind },
      FD.el("span", { class: "num", "aria-hidden": "true" }, line.old ?? ""),
      FD.el("span", { class: "num", "aria-hidden": "true" }, line.new ?? ""),
      FD.el("span", { class: "sign", "aria-label": FD.t("diff_" + line.kind) }, sign), body);
  }

  async function showVersion(versionId) {
    chosenVersion = versionId;
    const version = versions.find((candidate) => candidate.id === versionId);
    for (const button of $("versions").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(Number(button.parentElement.dataset.version) === versionId));
    }
    $("version-title").textContent = FD.t("studio_version", { n: version.number }) + " · " + FD.when(version.created_at);
    $("labels").replaceChildren(...version.labels.map((label) => FD.el("span", { class: "chip" }, label,
      FD.el("button", { type: "button", class: "link", "data-label": label,
                        "aria-label": FD.t("studio_remove_label", { label }) }, "×"))));
    const against = $("against");
    const chosenAgainst = against.dataset.version === String(versionId) ? against.value : "";
    against.replaceChildren(FD.el("option", { value: "" }, FD.t("studio_previous_version")),
      ...versions.filter((other) => other.id !== versionId).map((other) => FD.el("option", { value: other.id },
        versionName(other))));
    against.value = chosenAgainst;
    against.dataset.version = String(versionId);
    $("version-detail").hidden = false;
    await showDiff();
  }

  async function showDiff() {
    const versionId = chosenVersion;
    const against = $("against").value;
    const changes = await FD.api("GET", `/api/studio/versions/${versionId}/diff` + (against ? `?against=${against}` : ""));
    if (versionId !== chosenVersion) return;
    const of = document.querySelector("input[name=diff-of]:checked").value;
    const hunks = of === "compiled" ? changes.compiled_hunks : changes.hunks;
    const lines = hunks.flat();
    const added = lines.filter((line) => line.kind === "added").length;
    const removed = lines.filter((line) => line.kind === "removed").length;
    $("diff-summary").textContent = (changes.against === null ? FD.t("studio_first_version")
      : FD.t("studio_against", { n: changes.against })) + " · " + FD.t("persona_counts", { added, removed });
    const diff = $("diff");
    diff.replaceChildren();
    hunks.forEach((hunk, index) => {
      if (index > 0) diff.append(FD.el("li", { class: "gap", "aria-hidden": "true" }, "⋯"));
      for (const line of hunk) diff.append(lineItem(line));
    });
    if (!hunks.length) diff.append(FD.el("li", { class: "gap" }, FD.t("persona_no_changes")));
  }

  $("versions").addEventListener("click", (event) => {
    const row = event.target.closest("li[data-version]");
    if (row) showVersion(Number(row.dataset.version)).catch((error) => FD.toast(error.message));
  });
  $("against").addEventListener("change", () => showDiff().catch((error) => FD.toast(error.message)));
  for (const radio of document.querySelectorAll("input[name=diff-of]")) {
    radio.addEventListener("change", () => showDiff().catch((error) => FD.toast(error.message)));
  }
  $("labels").addEventListener("click", async (event) => {
    const button = event.target.closest("[data-label]");
    if (!button) return;
    try {
      await FD.api("DELETE", `/api/studio/versions/${chosenVersion}/labels/${encodeURIComponent(button.dataset.label)}`);
      await loadVersions();
      $("label-form").elements.label.focus();
    } catch (error) {
      FD.toast(error.message);
    }
  });
  $("label-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = event.target.elements.label;
    try {
      await FD.api("POST", `/api/studio/versions/${chosenVersion}/labels`, { label: input.value });
      input.value = "";
      await loadVersions();
    } catch (error) {
      FD.toast(error.message);
    }
  });
  $("restore").addEventListener("click", async () => {
    const version = versions.find((candidate) => candidate.id === chosenVersion);
    if (!(await FD.confirmed(FD.t("studio_confirm_restore", { n: version.number })))) return;
    if (!(await flush())) { FD.toast(FD.t("studio_run_unsaved", { reason: problem || FD.t("studio_state_offline") })); return; }
    try {
      const restored = await FD.api("POST", `/api/studio/versions/${version.id}/restore`, { revision: base });
      adopt(restored);
      FD.toast(FD.t("studio_restored", { n: version.number }));
    } catch (error) {
      FD.toast(error.message);
    }
  });

  // --- run history -----------------------------------------------------------------------------------

  let oldestRun = null;

  function statusLabel(run) {
    return FD.t("studio_status_" + (["ok", "error", "running", "stopped"].includes(run.status) ? run.status : "error"));
  }

  function runRow(run) {
    const block = run.version ? doc.prompt_blocks.find((candidate) => candidate.id === run.version.block_id) : null;
    const facts = [run.version ? FD.t("studio_version", { n: run.version.number }) : null, block ? block.name : null,
                   statusLabel(run), FD.t("studio_run_tokens", { tokens_in: run.tokens_in, tokens_out: run.tokens_out }),
                   run.latency_ms ? seconds(run.latency_ms) : null, "$" + run.cost.toFixed(4)].filter(Boolean)
    .map((fact) => fact.replace(/ /g, "\u00a0"));  // each fact on one line
    return FD.el("li", { "data-run": run.id, class: "run " + run.status },
      FD.el("details", {},
        FD.el("summary", {},
          FD.el("span", { class: "name" }, modelName(run.model)),
          FD.el("span", { class: "time" }, FD.when(run.created_at)),
          FD.el("span", { class: "preview" }, facts.join(" · "))),
        FD.el("h4", {}, FD.t("studio_prompt")), FD.el("pre", { class: "preview-text" }, run.prompt),
        FD.el("h4", {}, FD.t("studio_answer")), FD.el("pre", { class: "preview-text" }, run.answer || "—"),
        run.error ? FD.el("p", { class: "error" }, FD.t("studio_run_failed", { reason: run.error })) : null));
  }

  async function loadRuns(more) {
    const query = new URLSearchParams({ limit: "20" });
    if (more && oldestRun) query.set("before", oldestRun);
    let page;
    try {
      page = await FD.api("GET", `/api/studio/projects/${projectId}/runs?${query}`);
    } catch (error) {
      if (more) FD.toast(error.message);
      return;
    }
    const list = $("runs");
    if (!more) list.replaceChildren();
    list.append(...page.runs.map(runRow));
    if (page.runs.length) oldestRun = page.runs[page.runs.length - 1].id;
    $("older-runs").hidden = !page.more;
    $("no-runs").hidden = list.children.length > 0;
  }

  $("older-runs").addEventListener("click", () => loadRuns(true));

  // --- loading ---------------------------------------------------------------------------------------

  function renderAll() {
    $("project-name").textContent = projectName;
    document.title = projectName;
    if (!doc.prompt_blocks.some((block) => block.id === activeId)) activeId = doc.prompt_blocks.length ? doc.prompt_blocks[0].id : null;
    renderContext();
    renderTabs();
    renderEditor();
    clearCompiled();
    scheduleCompile(0);
    loadVersions();
    showState();
  }

  const local = localCopy();
  let server = null;
  let modelList = { models: [] };
  try {
    [server, modelList] = await Promise.all([FD.api("GET", `/api/studio/projects/${projectId}`),
                                             FD.api("GET", "/api/studio/models").catch(() => ({ models: [] }))]);
  } catch (error) {
    if (error.status !== 0 || !local) throw error;
  }
  models = modelList.models;
  if (server === null) {  // no connection, but this device holds unsaved changes: show and keep them
    projectName = local.name || "";
    doc = local.doc;
    base = local.base;
    dirty = true;
    offline = true;
  } else {
    projectName = server.name;
    limits = server.limits;
    doc = server.data;
    base = server.revision;
    if (local && canonical(local.doc) !== canonical(server.data)) {
      doc = local.doc;  // unsaved changes from an earlier visit: sent now if nobody saved since
      dirty = true;
      if (local.base !== server.revision) {
        base = local.base;
        conflict = { revision: server.revision };
      }
    }
    keepLocally();
  }
  renderAll();
  if (dirty && !conflict) save();
  for (const card of ["savebar", "context-card", "prompt-card", "history-card"]) $(card).hidden = false;
  syncPaneModels();
  await loadRuns(false);
});
