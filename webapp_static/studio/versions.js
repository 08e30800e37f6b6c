/* The prompt's versions: labels, the diff against another version, restore. */

import { flush } from "./autosave.js";
import { adopt } from "./page.js";
import { fillPaneVersions, versionName } from "./runs.js";
import { $, active, state } from "./state.js";

export async function loadVersions() {
  const block = active();
  if (!block) return;
  let answer;
  try {
    answer = await FD.api("GET", `/api/studio/projects/${state.projectId}/versions?block_id=${encodeURIComponent(block.id)}`);
  } catch (error) {
    $("no-versions").hidden = false;
    $("no-versions").textContent = error.message;
    return;
  }
  if (active() !== block) return;
  state.versions = answer.versions;
  const list = $("versions");
  list.replaceChildren(...state.versions.map((version) => FD.el("li", { "data-version": version.id },
    FD.el("button", { type: "button", "aria-pressed": String(version.id === state.chosenVersion) },
      FD.el("span", { class: "name" }, FD.t("studio_version", { n: version.number })),
      FD.el("span", { class: "time" }, FD.when(version.created_at)),
      FD.el("span", { class: "preview" }, ...version.labels.map((label) => FD.el("span", { class: "badge label" }, label)),
            " ", version.template.replace(/\s+/g, " ").trim().slice(0, 160))))));
  $("no-versions").hidden = state.versions.length > 0;
  $("no-versions").textContent = FD.t("studio_no_versions");
  fillPaneVersions();
  if (state.chosenVersion && state.versions.some((version) => version.id === state.chosenVersion)) await showVersion(state.chosenVersion);
  else { state.chosenVersion = null; $("version-detail").hidden = true; }
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
  state.chosenVersion = versionId;
  const version = state.versions.find((candidate) => candidate.id === versionId);
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
    ...state.versions.filter((other) => other.id !== versionId).map((other) => FD.el("option", { value: other.id },
      versionName(other))));
  against.value = chosenAgainst;
  against.dataset.version = String(versionId);
  $("version-detail").hidden = false;
  await showDiff();
}

async function showDiff() {
  const versionId = state.chosenVersion;
  const against = $("against").value;
  const changes = await FD.api("GET", `/api/studio/versions/${versionId}/diff` + (against ? `?against=${against}` : ""));
  if (versionId !== state.chosenVersion) return;
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

export function wireVersions() {
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
      await FD.api("DELETE", `/api/studio/versions/${state.chosenVersion}/labels/${encodeURIComponent(button.dataset.label)}`);
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
      await FD.api("POST", `/api/studio/versions/${state.chosenVersion}/labels`, { label: input.value });
      input.value = "";
      await loadVersions();
    } catch (error) {
      FD.toast(error.message);
    }
  });
  $("restore").addEventListener("click", async () => {
    const version = state.versions.find((candidate) => candidate.id === state.chosenVersion);
    if (!(await FD.confirmed(FD.t("studio_confirm_restore", { n: version.number })))) return;
    if (!(await flush())) { FD.toast(FD.t("studio_run_unsaved", { reason: state.problem || FD.t("studio_state_offline") })); return; }
    try {
      const restored = await FD.api("POST", `/api/studio/versions/${version.id}/restore`, { revision: state.base });
      adopt(restored);
      FD.toast(FD.t("studio_restored", { n: version.number }));
    } catch (error) {
      FD.toast(error.message);
    }
  });
}
