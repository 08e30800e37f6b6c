/* The compiled preview: the server compiles the page's document as typed (no save needed) and counts
   its tokens; problems are listed and marked in the text. */

import { changed, validate } from "./autosave.js";
import { renderVariables } from "./prompts.js";
import { $, active, state } from "./state.js";

const COMPILE_DELAY = 300;

let compileTimer = null;
let compileSeq = 0;
const stash = {};  // per block: values of variables the template stopped naming, in case they return

export function scheduleCompile(delay = COMPILE_DELAY) {
  clearTimeout(compileTimer);
  compileTimer = setTimeout(compile, delay);
}

export function clearCompiled() {
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
    const compiled = await FD.api("POST", `/api/studio/projects/${state.projectId}/compile`,
                                  { block_id: block.id, model: $("model").value || block.model, data: state.doc });
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
  const tokens = FD.plural("tokens_count", compiled.tokens);
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
