/* The whole editor drawn again from `state`: on the first load, and when the server's project replaces
   what is shown. */

import { keepLocally, showState } from "./autosave.js";
import { renderContext } from "./context.js";
import { clearCompiled, scheduleCompile } from "./preview.js";
import { renderEditor, renderTabs } from "./prompts.js";
import { $, state } from "./state.js";
import { loadVersions } from "./versions.js";

export function renderAll() {
  $("project-name").textContent = state.projectName;
  document.title = state.projectName;
  if (!state.doc.prompt_blocks.some((block) => block.id === state.activeId)) {
    state.activeId = state.doc.prompt_blocks.length ? state.doc.prompt_blocks[0].id : null;
  }
  renderContext();
  renderTabs();
  renderEditor();
  clearCompiled();
  scheduleCompile(0);
  loadVersions();
  showState();
}

/* The server's project replaces what is shown (first load, "load the latest", a restore). */
export function adopt(project) {
  state.projectName = project.name;
  state.limits = project.limits || state.limits;
  state.doc = project.data;
  state.base = project.revision;
  state.dirty = false; state.conflict = null; state.problem = ""; state.offline = false; state.retryable = false;
  keepLocally();
  renderAll();
}
