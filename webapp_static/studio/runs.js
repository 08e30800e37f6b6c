/* Runs, streamed as NDJSON: the prompt block as it is now on one model, or two side by side (each
   pane its own model and version). */

import { flush } from "./autosave.js";
import { loadRuns } from "./history.js";
import { fillModels, modelName } from "./prompts.js";
import { $, active, state } from "./state.js";
import { loadVersions } from "./versions.js";

export const panes = [...document.querySelectorAll("#panes .pane")].map((root) => ({
  root, answer: root.querySelector(".answer"), meta: root.querySelector(".run-meta"),
  error: root.querySelector(".error"), model: root.querySelector(".pane-model"),
  version: root.querySelector(".pane-version"), controls: root.querySelector(".pane-controls") }));
const compare = $("compare");

export function resetPane(pane) {
  pane.answer.textContent = "";
  pane.meta.replaceChildren();
  pane.error.hidden = true;
  pane.root.classList.remove("done", "failed");
}

export function syncPaneModels() {
  const first = $("model").value;
  const other = (state.models.find((option) => option.id !== first) || { id: first }).id;
  fillModels(panes[0].model, panes[0].model.value || first);
  fillModels(panes[1].model, panes[1].model.value || other);
}

export function versionName(version) {
  return FD.t("studio_version", { n: version.number }) + (version.labels.length ? ` (${version.labels.join(", ")})` : "");
}

export function fillPaneVersions() {
  for (const pane of panes) {
    const chosen = pane.version.value;
    pane.version.replaceChildren(FD.el("option", { value: "" }, FD.t("studio_current_text")),
      ...state.versions.map((version) => FD.el("option", { value: version.id }, versionName(version))));
    if ([...pane.version.options].some((option) => option.value === chosen)) pane.version.value = chosen;
  }
}

export function seconds(ms) {
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
    await FD.stream(`/api/studio/projects/${state.projectId}/runs`, body, (line) => {
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

export function wireRuns() {
  compare.addEventListener("change", () => {
    const on = compare.checked;
    $("panes").classList.toggle("compare", on);
    panes[1].root.hidden = !on;
    for (const pane of panes) pane.controls.hidden = !on;
    if (on) { panes[0].model.value = $("model").value; syncPaneModels(); }
    $("run").textContent = FD.t(on ? "studio_run_both" : "studio_run");
  });

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
        const reason = state.conflict ? FD.t("studio_state_conflict") : state.problem || FD.t("studio_state_offline");
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
}
