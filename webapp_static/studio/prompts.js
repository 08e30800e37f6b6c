/* Prompt blocks: the tabs, the template with its variables' values, and the model it runs on. */

import { changed } from "./autosave.js";
import { clearCompiled, scheduleCompile } from "./preview.js";
import { panes, resetPane, syncPaneModels } from "./runs.js";
import { $, active, freeName, moveIn, newKey, state } from "./state.js";
import { loadVersions } from "./versions.js";

const template = $("template");

export function renderTabs() {
  const tabs = $("prompt-tabs");
  tabs.replaceChildren(...state.doc.prompt_blocks.map((block) => FD.el("label", {},
    FD.el("input", { type: "radio", name: "prompt-block", value: block.id, checked: block.id === state.activeId }),
    FD.el("span", {}, block.name.trim() || "…"))));
  $("add-prompt").disabled = state.doc.prompt_blocks.length >= state.limits.max_blocks;
}

export function renderRefs() {
  const refs = state.doc.context_blocks.filter((block) => block.name.trim() && !/[{}@]/.test(block.name));
  $("refs").replaceChildren(...refs.map((block) => FD.el("button", {
    type: "button", class: "chip-button", "data-ref": block.name.trim(),
    "aria-label": FD.t("studio_insert_named", { name: block.name.trim() }) }, `{{@${block.name.trim()}}}`)));
  $("insert-refs").hidden = !refs.length || !active();
}

function modelLabel(option) {
  return option.own_key ? FD.t("studio_model_own", { model: option.model, key: option.provider })
    : `${option.model} · ${option.provider}`;
}

export function modelName(id) {
  const option = state.models.find((candidate) => candidate.id === id);
  return option ? modelLabel(option) : id;
}

export function fillModels(select, chosen) {
  const options = state.models.map((option) => FD.el("option", { value: option.id }, modelLabel(option)));
  if (chosen && !state.models.some((option) => option.id === chosen)) {
    options.unshift(FD.el("option", { value: chosen }, FD.t("studio_model_gone", { model: chosen })));
  }
  if (!options.length) options.push(FD.el("option", { value: "" }, FD.t("studio_no_models")));
  select.replaceChildren(...options);
  if (chosen) select.value = chosen;
}

export function renderEditor() {
  const block = active();
  $("prompt-editor").hidden = !block;
  $("preview-card").hidden = !block;
  $("run-card").hidden = !block;
  $("versions-card").hidden = !block;
  if (!block) return;
  const index = state.doc.prompt_blocks.indexOf(block);
  $("block-name").value = block.name;
  $("block-name").removeAttribute("aria-invalid");
  $("block-up").disabled = index === 0;
  $("block-down").disabled = index === state.doc.prompt_blocks.length - 1;
  template.value = block.template;
  fillModels($("model"), block.model);
  $("variables").replaceChildren();  // another block's fields must not be reused
  renderVariables(block, Object.keys(block.variables));
  renderRefs();
}

function select(blockId) {
  state.activeId = blockId;
  state.chosenVersion = null;
  renderTabs();
  renderEditor();
  clearCompiled();
  scheduleCompile(0);
  loadVersions();
  for (const pane of panes) resetPane(pane);
}

/* One value field per variable the template names, kept (and focused) across redraws. */
export function renderVariables(block, names) {
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

export function wirePrompts() {
  $("prompt-tabs").addEventListener("change", (event) => { if (event.target.name === "prompt-block") select(event.target.value); });
  $("add-prompt").addEventListener("click", () => {
    const block = { id: newKey(), name: freeName(FD.t("studio_default_prompt"), state.doc.prompt_blocks.map((b) => b.name)),
                    template: "", variables: {}, model: active() ? active().model : "" };
    state.doc.prompt_blocks.push(block);
    changed(false);
    select(block.id);
    $("block-name").focus();
    $("block-name").select();
  });
  $("block-name").addEventListener("input", (event) => {
    active().name = event.target.value;
    event.target.setAttribute("aria-invalid", String(!event.target.value.trim()));
    const tab = $("prompt-tabs").querySelector(`input[value="${state.activeId}"] + span`);
    if (tab) tab.textContent = event.target.value.trim() || "…";
    changed(false);
  });
  for (const [id, by] of [["block-up", -1], ["block-down", 1]]) {
    $(id).addEventListener("click", () => {
      if (!moveIn(state.doc.prompt_blocks, state.doc.prompt_blocks.indexOf(active()), by)) return;
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
    const index = state.doc.prompt_blocks.indexOf(block);
    state.doc.prompt_blocks.splice(index, 1);
    changed(false);
    const next = state.doc.prompt_blocks[Math.min(index, state.doc.prompt_blocks.length - 1)];
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

  $("variables").addEventListener("input", (event) => {
    const name = event.target.dataset.var;
    if (!name) return;
    active().variables[name] = event.target.value;
    event.target.classList.remove("missing");
    changed();
  });
}
