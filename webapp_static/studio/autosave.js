/* Autosave: every edit goes into `doc` and, at once, into localStorage (with the revision it is
   based on); a PUT follows ~800 ms after the last edit. Without a connection the local copy waits
   and is sent when the browser is online again (or on the next visit). A save based on an older
   revision is refused by the server (409 "stale"): the person chooses whose text wins. */

import { adopt } from "./page.js";
import { scheduleCompile } from "./preview.js";
import { $, state } from "./state.js";

const SAVE_DELAY = 800;
const RETRY_EVERY = 15000;

let edits = 0;           // counts edits, to tell whether one came in while a save was under way
let saving = null;       // the save under way (a promise)
let saveTimer = null;
let storedLocally = true;

// --- the local copy --------------------------------------------------------------------------------

export function keepLocally() {
  try {
    const copy = { base: state.base, doc: state.doc, name: state.projectName, at: Date.now() };
    if (state.dirty) localStorage.setItem(state.storageKey, JSON.stringify(copy));
    else localStorage.removeItem(state.storageKey);
    storedLocally = true;
  } catch (error) {
    storedLocally = false;  // storage full or switched off: only this page holds the changes now
  }
}

export function localCopy() {
  try {
    const copy = JSON.parse(localStorage.getItem(state.storageKey) || "null");
    return copy && copy.doc && Number.isInteger(copy.base) ? copy : null;
  } catch (error) {
    return null;
  }
}

export function canonical(value) {
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort().map((key) => JSON.stringify(key) + ":" + canonical(value[key])).join(",") + "}";
  }
  return JSON.stringify(value);
}

// --- the save state ---------------------------------------------------------------------------------

export function showState() {
  const box = $("save-state");
  let shown = "saved";
  let text = FD.t("saved");
  if (state.conflict) { shown = "conflict"; text = FD.t("studio_state_conflict"); }
  else if (state.problem) { shown = "error"; text = FD.t("studio_state_error", { reason: state.problem }); }
  else if (state.dirty && (state.offline || !navigator.onLine)) {
    shown = "offline"; text = FD.t(storedLocally ? "studio_state_offline" : "studio_state_offline_unkept");
  } else if (state.dirty || saving) { shown = "saving"; text = FD.t("studio_state_saving"); }
  box.dataset.state = shown;
  box.textContent = text;
  $("conflict").hidden = !state.conflict;
}

export function validate() {
  const seen = new Set();
  for (const block of state.doc.context_blocks) {
    const name = block.name.trim();
    if (!name) return FD.t("studio_need_context_name");
    if (/[{}@]/.test(name)) return FD.t("studio_bad_context_name", { name });
    if (seen.has(name.toLowerCase())) return FD.t("studio_context_name_twice", { name });
    seen.add(name.toLowerCase());
  }
  if (state.doc.prompt_blocks.some((block) => !block.name.trim())) return FD.t("studio_need_prompt_name");
  return "";
}

function schedule(delay) {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => { save(); }, delay);
}

/* Every edit: remember it here and on this device at once, save to the server a little later. */
export function changed(recompile = true) {
  edits += 1;
  state.dirty = true;
  state.problem = "";
  keepLocally();
  schedule(SAVE_DELAY);
  if (recompile) scheduleCompile();
  showState();
}

export function save() {
  clearTimeout(saveTimer);
  if (saving) return saving;
  if (!state.dirty || state.conflict) { showState(); return Promise.resolve(); }
  const invalid = validate();
  if (invalid) { state.problem = invalid; showState(); return Promise.resolve(); }
  if (!navigator.onLine) { state.offline = true; showState(); return Promise.resolve(); }
  const sent = edits;
  saving = (async () => {
    try {
      const saved = await FD.api("PUT", `/api/studio/projects/${state.projectId}`, { revision: state.base, data: state.doc });
      state.base = saved.revision;
      state.offline = false; state.retryable = false; state.problem = "";
      if (edits === sent) state.dirty = false;
      keepLocally();
    } catch (error) {
      state.offline = error.status === 0;
      state.retryable = error.status >= 500;
      if (error.code === "stale") {
        state.conflict = { revision: error.details && error.details.revision };
      } else if (!state.offline) {
        state.problem = error.message;
      }
    } finally {
      saving = null;
    }
    if (state.dirty && !state.conflict && !state.problem && !state.offline) schedule(SAVE_DELAY);  // typed while saving
    showState();
  })();
  showState();
  return saving;
}

/* Saves what is pending now; true when the server has all of it. */
export async function flush() {
  if (saving) await saving;
  if (state.dirty) await save();
  return !state.dirty && !state.conflict;
}

/* Saving again when the connection is back, and the choice after a conflict. */
export function wireAutosave() {
  window.addEventListener("online", () => { state.offline = false; if (state.dirty) save(); scheduleCompile(); showState(); });
  window.addEventListener("offline", showState);
  setInterval(() => { if (state.dirty && !saving && !state.conflict && (state.offline || state.retryable)) save(); }, RETRY_EVERY);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden" && state.dirty) save(); });
  window.addEventListener("beforeunload", (event) => { if (state.dirty && !storedLocally) event.preventDefault(); });

  $("take-theirs").addEventListener("click", async () => {
    try {
      adopt(await FD.api("GET", `/api/studio/projects/${state.projectId}`));
      FD.toast(FD.t("studio_loaded_latest"));
    } catch (error) {
      FD.toast(error.message);
    }
  });
  $("keep-mine").addEventListener("click", async () => {
    let revision = state.conflict && state.conflict.revision;
    try {
      if (!revision) revision = (await FD.api("GET", `/api/studio/projects/${state.projectId}`)).revision;
    } catch (error) {
      FD.toast(error.message);
      return;
    }
    state.base = revision;
    state.conflict = null;
    state.dirty = true;
    keepLocally();
    await save();
  });
}
