/* The project's run history, newest first, a page at a time. */

import { modelName } from "./prompts.js";
import { seconds } from "./runs.js";
import { $, state } from "./state.js";

let oldestRun = null;

function statusLabel(run) {
  return FD.t("studio_status_" + (["ok", "error", "running", "stopped"].includes(run.status) ? run.status : "error"));
}

function runRow(run) {
  const block = run.version ? state.doc.prompt_blocks.find((candidate) => candidate.id === run.version.block_id) : null;
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

export async function loadRuns(more) {
  const query = new URLSearchParams({ limit: "20" });
  if (more && oldestRun) query.set("before", oldestRun);
  let page;
  try {
    page = await FD.api("GET", `/api/studio/projects/${state.projectId}/runs?${query}`);
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

export function wireHistory() {
  $("older-runs").addEventListener("click", () => loadRuns(true));
}
