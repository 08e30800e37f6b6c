/* The persona editor: the active text, its versions, what each one changed, and rollback.
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
  let overview = null;
  let saved = "";  // the text as the server has it, to tell whether there is anything to save
  let selected = null;

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

  text.addEventListener("input", updateCount);
  discard.addEventListener("click", () => { text.value = saved; updateCount(); });
  editor.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      const base = overview.active ? overview.active.version : 0;
      const created = await FD.api("POST", "/api/persona/versions", { text: text.value, base_version: base });
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
  window.addEventListener("beforeunload", (event) => {
    if (overview && text.value.trim() !== saved) event.preventDefault();
  });
  await load(null);
});
