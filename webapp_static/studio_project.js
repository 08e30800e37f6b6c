/* The prompt studio's editor: context blocks and prompt blocks, the live compiled preview, autosave
   that survives a lost connection, runs streamed as NDJSON (one model or two side by side), the
   prompt's versions (labels, diff, restore) and the project's run history.

   The parts are ES modules in studio/ (state.js holds what they share); this one opens the project.
   The page loads it as a module under a versioned URL (?v=); the modules it imports have plain URLs,
   which the server marks "Cache-Control: no-cache": the browser asks again at each load (a 304 when
   unchanged), so a new deploy's page never runs with an earlier deploy's module. */

import { canonical, keepLocally, localCopy, save, wireAutosave } from "./studio/autosave.js";
import { wireContext } from "./studio/context.js";
import { loadRuns, wireHistory } from "./studio/history.js";
import { renderAll } from "./studio/page.js";
import { wirePrompts } from "./studio/prompts.js";
import { syncPaneModels, wireRuns } from "./studio/runs.js";
import { $, state } from "./studio/state.js";
import { wireVersions } from "./studio/versions.js";

FD.start(async (me) => {
  const projectId = Number(new URLSearchParams(location.search).get("id"));
  if (!Number.isInteger(projectId) || projectId <= 0) { FD.status(FD.t("studio_no_project")); return; }
  state.projectId = projectId;
  state.storageKey = `fd-studio:${me.id}:${projectId}`;
  wireAutosave();
  wireContext();
  wirePrompts();
  wireRuns();
  wireVersions();
  wireHistory();

  const local = localCopy();
  let server = null;
  let modelList = { models: [] };
  try {
    [server, modelList] = await Promise.all([FD.api("GET", `/api/studio/projects/${state.projectId}`),
                                             FD.api("GET", "/api/studio/models").catch(() => ({ models: [] }))]);
  } catch (error) {
    if (error.status !== 0 || !local) throw error;
  }
  state.models = modelList.models;
  if (server === null) {  // no connection, but this device holds unsaved changes: show and keep them
    state.projectName = local.name || "";
    state.doc = local.doc;
    state.base = local.base;
    state.dirty = true;
    state.offline = true;
  } else {
    state.projectName = server.name;
    state.limits = server.limits;
    state.doc = server.data;
    state.base = server.revision;
    if (local && canonical(local.doc) !== canonical(server.data)) {
      state.doc = local.doc;  // unsaved changes from an earlier visit: sent now if nobody saved since
      state.dirty = true;
      if (local.base !== server.revision) {
        state.base = local.base;
        state.conflict = { revision: server.revision };
      }
    }
    keepLocally();
  }
  renderAll();
  if (state.dirty && !state.conflict) save();
  for (const card of ["savebar", "context-card", "prompt-card", "history-card"]) $(card).hidden = false;
  syncPaneModels();
  await loadRuns(false);
});
